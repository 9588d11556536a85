package warden

import "context"

// Interaction is what a transport lets the pipeline do with the person
// behind one request: whether the client can put a question to its user
// now, the answer it sent to a question warden asked, and a way to report
// progress during a long wait. Transports set it per request.
type Interaction struct {
	// CanAsk reports that the client can ask its user a question during
	// this request (MCP elicitation, over a transport that carries it).
	CanAsk bool
	// Answer is the user's answer to a question warden asked, exactly as
	// the client sent it: unverified until its State checks out.
	Answer *Answer
	// Progress, when not nil, sends the client a progress message.
	Progress func(message string)
}

// Answer is a client's answer to an Ask.
type Answer struct {
	// State is the token warden issued with the question, echoed back.
	State string
	// Action is "accept", "decline" or "cancel".
	Action string
	// Content is what the user filled in, when they accepted.
	Content map[string]any
}

// ConfirmField is the boolean a confirmation form asks for; accepting the
// form with it false is a decline.
const ConfirmField = "confirm"

// Answer actions.
const (
	AnswerAccept  = "accept"
	AnswerDecline = "decline"
	AnswerCancel  = "cancel"
)

type interactionKey struct{}

// WithInteraction returns a context that carries in.
func WithInteraction(ctx context.Context, in *Interaction) context.Context {
	return context.WithValue(ctx, interactionKey{}, in)
}

// InteractionFrom returns the interaction carried by ctx; without one, the
// client cannot be asked anything.
func InteractionFrom(ctx context.Context) *Interaction {
	if in, ok := ctx.Value(interactionKey{}).(*Interaction); ok && in != nil {
		return in
	}
	return &Interaction{}
}

// Report sends a progress message to the client, if it listens.
func (in *Interaction) Report(message string) {
	if in != nil && in.Progress != nil {
		in.Progress(message)
	}
}
