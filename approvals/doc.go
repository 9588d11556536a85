// Package approvals holds granted calls that approval rules cover until a
// human — the calling user, or a reviewer who is not the requester —
// approves exactly that call, once.
package approvals
