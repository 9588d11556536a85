package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// webhookTimeout bounds one notification.
const webhookTimeout = 5 * time.Second

// notification is the body posted to notify.webhook: `text` is what Slack
// (and compatible chat webhooks) show; `approval` is the request.
type notification struct {
	Text     string           `json:"text"`
	Approval *warden.Approval `json:"approval"`
	// URL is the request's page in the console, when console.base_url is
	// set.
	URL string `json:"url,omitempty"`
}

// ConsoleLink is the console URL of approval request id under base (the
// console's base URL, without /console).
func ConsoleLink(base, id string) string {
	return strings.TrimSuffix(base, "/") + "/console/approvals/" + url.PathEscape(id)
}

// notify posts a new reviewers' request to the rule's webhook, in the
// background: a slow or failing webhook never holds up or fails the call
// (reviewers can still list pending requests). Failures are logged without
// the URL, which carries the webhook's secret.
func (s *Service) notify(r *Rule, a *warden.Approval) {
	if r.Notify == nil || r.Notify.Webhook == "" {
		return
	}
	n := notification{Text: NotificationText(a), Approval: a}
	if s.ConsoleURL != "" {
		n.URL = ConsoleLink(s.ConsoleURL, a.ID)
		n.Text += "\nReview in the console: " + n.URL
	}
	body, err := json.Marshal(n)
	if err != nil {
		s.log().Error("approval notification could not be encoded", "approval", a.ID, "err", err)
		return
	}
	client := s.HTTP
	if client == nil {
		client = &http.Client{Timeout: webhookTimeout}
	}
	url := r.Notify.Webhook
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			s.log().Error("approval notification failed", "approval", a.ID, "rule", r.Name, "err", "invalid webhook URL")
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			s.log().Error("approval notification failed", "approval", a.ID, "rule", r.Name, "err", "the webhook could not be reached")
			return
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			s.log().Error("approval notification failed", "approval", a.ID, "rule", r.Name, "status", resp.StatusCode)
		}
	}()
}

// NotificationText is the one-paragraph summary of a new request for chat.
func NotificationText(a *warden.Approval) string {
	s := fmt.Sprintf("warden: %s asks to run %s on %s (rule %s):\n```%s```", caller(a.Requester), a.Tool, a.Backend, a.Rule, printableLines(shorten(a.Statement, 1500)))
	if len(a.Params) > 0 {
		s += "\nParameters: " + warden.Printable(shorten(strings.Join(a.Params, ", "), 500))
	}
	if a.Purpose != "" {
		s += "\nStated purpose: " + warden.Printable(shorten(a.Purpose, 300))
	}
	if a.EstimatedRows != nil {
		s += fmt.Sprintf("\nEstimated rows: %d", *a.EstimatedRows)
	}
	s += fmt.Sprintf("\nApprove: `warden approvals approve %s` · deny: `warden approvals deny %s --reason ...` · expires %s",
		a.ID, a.ID, a.ExpiresAt.UTC().Format(time.RFC3339))
	return s
}
