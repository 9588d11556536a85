// Package kube is the kube_get tool: least-privilege, read-only access to
// configured Kubernetes clusters, with warden's credential never shown.
package kube
