package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/mcp"
)

// approvals runs `warden approvals SUBCOMMAND`: list and show read the
// store read-only; approve and deny decide a request as a reviewer, who is
// the subject of a verified --token, or identity.local where the config
// explicitly makes it a reviewer.
func (m *Main) approvals(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("approvals needs a subcommand: list, show ID, approve ID or deny ID")
	}
	switch args[0] {
	case "list":
		return m.approvalsList(ctx, args[1:])
	case "show":
		return m.approvalsShow(ctx, args[1:])
	case "approve", "deny":
		return m.approvalsDecide(ctx, args[0] == "approve", args[1:])
	}
	return usagef("unknown approvals subcommand %q (list, show ID, approve ID or deny ID)", args[0])
}

func (m *Main) approvalsList(ctx context.Context, args []string) error {
	fs := m.flags("approvals list")
	config := fs.String("config", "warden.yaml", "config file")
	all := fs.Bool("all", false, "every request, not only pending ones")
	status := fs.String("status", "", "only requests recorded with this status (pending, approved, denied, expired, used)")
	limit := fs.Int("limit", 50, "at most this many requests")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("approvals list takes no arguments, got %q", fs.Arg(0))
	}
	f := warden.ApprovalFilter{Status: warden.ApprovalStatus(*status), Limit: *limit}
	switch {
	case *all && *status != "":
		return usagef("--all and --status exclude each other")
	case *all:
	case *status == "":
		f.Status = warden.ApprovalPending
	}
	switch f.Status {
	case "", warden.ApprovalPending, warden.ApprovalApproved, warden.ApprovalDenied, warden.ApprovalExpired, warden.ApprovalUsed:
	default:
		return usagef("--status %q: use pending, approved, denied, expired or used", *status)
	}
	store, _, err := m.openRecording(ctx, *config)
	if err != nil {
		return err
	}
	defer store.Close()
	list, err := store.Approvals(ctx, f)
	if err != nil {
		return err
	}
	return WriteApprovalList(m.Stdout, list, m.Clock())
}

func (m *Main) approvalsShow(ctx context.Context, args []string) error {
	fs := m.flags("approvals show")
	config := fs.String("config", "warden.yaml", "config file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("approvals show needs exactly one approval id")
	}
	store, url, err := m.openRecording(ctx, *config)
	if err != nil {
		return err
	}
	defer store.Close()
	a, err := store.Approval(ctx, fs.Arg(0))
	if errors.Is(err, warden.ErrApprovalNotFound) {
		return fmt.Errorf("no approval request %q in %s", fs.Arg(0), url)
	}
	if err != nil {
		return err
	}
	history, err := store.ApprovalHistory(ctx, a.ID)
	if err != nil {
		return err
	}
	return WriteApproval(m.Stdout, a, history, m.Clock())
}

func (m *Main) approvalsDecide(ctx context.Context, approve bool, args []string) error {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	fs := m.flags("approvals " + verb)
	config := fs.String("config", "warden.yaml", "config file")
	token := fs.String("token", "", "decide as the subject of this bearer token (default: $WARDEN_TOKEN, else identity.local)")
	reason := fs.String("reason", "", "why; recorded, and shown to the agent on a denial")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("approvals %s needs exactly one approval id", verb)
	}
	cfg, err := m.loadRecordingConfig(*config)
	if err != nil {
		return err
	}
	reviewer, err := m.reviewer(ctx, cfg, *token)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg.Store.URL, cfg.Store.Options())
	if err != nil {
		return fmt.Errorf("open the recording store: %w", err)
	}
	defer store.Close()
	svc := &approvals.Service{Store: store, Clock: m.Clock}
	a, err := svc.Decide(ctx, reviewer, fs.Arg(0), approve, *reason)
	if err != nil {
		return errors.New(warden.AsError(err).Message)
	}
	if approve {
		fmt.Fprintf(m.Stdout, "approved %s (rule %s) for %s as %s; it releases this one call once, until %s:\n",
			a.ID, a.Rule, a.Requester.Subject, reviewer.Subject, a.ExpiresAt.UTC().Format(time.RFC3339))
		writeLines(m.Stdout, "  ", a.Statement)
		return nil
	}
	fmt.Fprintf(m.Stdout, "denied %s (rule %s) for %s as %s\n", a.ID, a.Rule, a.Requester.Subject, reviewer.Subject)
	return nil
}

// reviewer is who decides: the subject of a bearer token verified like any
// other (--token, else $WARDEN_TOKEN), or, only where the config says so
// (identity.local.reviewer, never with identity.oidc), identity.local.
func (m *Main) reviewer(ctx context.Context, cfg *Config, token string) (*warden.Caller, error) {
	if token == "" {
		token, _ = m.Getenv("WARDEN_TOKEN")
	}
	if token != "" {
		if len(cfg.Identity.OIDC) == 0 {
			return nil, errors.New("a token was given, but no identity.oidc issuer is configured to verify it")
		}
		v, err := mcp.NewVerifier(ctx, cfg.Identity.OIDC, m.Clock, nil)
		if err != nil {
			return nil, warden.Under("identity.oidc", err)
		}
		c, err := v.Verify(ctx, token)
		if err != nil {
			return nil, fmt.Errorf("the token is not valid: %s", warden.AsError(err).Message)
		}
		return c, nil
	}
	switch local := cfg.Identity.Local; {
	case len(cfg.Identity.OIDC) > 0:
		return nil, errors.New("deciding needs a reviewer identity: pass --token (or set WARDEN_TOKEN) with a token from a configured identity.oidc issuer; " +
			"with issuers configured, the local identity does not decide")
	case local == nil:
		return nil, errors.New("deciding needs a reviewer identity: pass --token (or set WARDEN_TOKEN) with a token from a configured issuer, " +
			"or, in a single-user setup, configure identity.local with reviewer: true")
	case !local.Reviewer:
		return nil, fmt.Errorf("deciding needs a reviewer identity: identity.local (%s) is not a reviewer unless the config says so with identity.local.reviewer: true "+
			"(single-user setups); otherwise pass --token with a token from a configured issuer", local.Subject)
	}
	return cfg.Identity.Caller(), nil
}
