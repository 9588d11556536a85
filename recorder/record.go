package recorder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/warden-mcp/warden"
)

// Record kinds, the values of the records.kind column.
const (
	KindSessionStart  = "session_start"
	KindSessionUpdate = "session_update"
	KindSessionEnd    = "session_end"
	KindCallStart     = "call_start"
	KindCallFinish    = "call_finish"
	// A checkpoint signs the chain up to the record before it.
	KindCheckpoint = "checkpoint"
	// A prune record says retention removed the records before a
	// checkpoint.
	KindPrune = "prune"
)

// TimeLayout is RFC 3339 with a fixed nine-digit fraction, always in UTC,
// so that the text order of the at column is the time order.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Encode returns v as compact JSON. encoding/json is deterministic (struct
// fields in declaration order, map keys sorted), so the same record always
// has the same text; HTML escaping is off so statements stay readable.
func Encode(v any) (string, error) {
	var b bytes.Buffer
	if err := encode(&b, v); err != nil {
		return "", err
	}
	return ownedString(b.Bytes()), nil
}

// encode writes v to b as Encode does, without the encoder's newline.
func encode(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // the newline Encode ends with
	return nil
}

// ownedString returns b as a string without copying it: a record's text
// is a few KB (a result's bytes) and was copied once more per record
// only to become a string. b must not be used again by anyone.
func ownedString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

type SessionJSON struct {
	ID              string      `json:"id"`
	Transport       string      `json:"transport,omitempty"`
	ClientName      string      `json:"client_name,omitempty"`
	ClientVersion   string      `json:"client_version,omitempty"`
	ProtocolVersion string      `json:"protocol_version,omitempty"`
	Caller          *CallerJSON `json:"caller,omitempty"`
	StartedAt       string      `json:"started_at,omitempty"`
	EndedAt         string      `json:"ended_at,omitempty"`
}

type CallerJSON struct {
	Subject string   `json:"subject"`
	Issuer  string   `json:"issuer,omitempty"`
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Method  string   `json:"method"`
}

type OpJSON struct {
	Verb       string `json:"verb"`
	Object     string `json:"object,omitempty"`
	Unfiltered bool   `json:"unfiltered,omitempty"`
}

type actionJSON struct {
	Backend   string   `json:"backend"`
	Kind      string   `json:"kind"`
	Ops       []OpJSON `json:"ops,omitempty"`
	Functions []string `json:"functions,omitempty"`
	Statement string   `json:"statement,omitempty"`
	Purpose   string   `json:"purpose,omitempty"`
}

type DecisionJSON struct {
	Effect  string   `json:"effect"`
	Rule    string   `json:"rule"`
	Reasons []string `json:"reasons,omitempty"`
	Allowed []string `json:"allowed,omitempty"`
}

type ErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Detail is the internal cause; it is recorded, never shown to the agent.
	Detail string `json:"detail,omitempty"`
}

// CallJSON is the body of call_start and call_finish records; the fields
// after StartedAt are set on call_finish only.
type CallJSON struct {
	ID        string          `json:"id"`
	SessionID string          `json:"session_id,omitempty"`
	Caller    *CallerJSON     `json:"caller,omitempty"`
	Tool      string          `json:"tool"`
	Args      json.RawMessage `json:"args,omitempty"`
	Action    *actionJSON     `json:"action,omitempty"`
	Risk      string          `json:"risk,omitempty"`
	Decision  *DecisionJSON   `json:"decision,omitempty"`
	StartedAt string          `json:"started_at"`
	// Detected names the value detectors that masked something.
	Detected []string `json:"detected,omitempty"`
	// Hash identifies the exact call; Approval says what became of the
	// approval it needed. Both only for calls an approval rule held.
	Hash     string            `json:"hash,omitempty"`
	Approval *CallApprovalJSON `json:"approval,omitempty"`
	// Flow names the flow rule or budget that refused or held the call,
	// the earlier call the data came from and the argument that carried it.
	Flow *CallFlowJSON `json:"flow,omitempty"`
	// ArgsIn, on a call_finish, names the record that holds the call's
	// arguments and action ("call_start"); without it, this record does.
	ArgsIn string `json:"args_in,omitempty"`

	Outcome    string          `json:"outcome,omitempty"`
	Error      *ErrorJSON      `json:"error,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Count      int64           `json:"count,omitempty"`
	Truncated  bool            `json:"truncated,omitempty"`
	EndedAt    string          `json:"ended_at,omitempty"`
	DurationMS float64         `json:"duration_ms,omitempty"`
}

// CallFlowJSON is warden.CallFlow as recorded.
type CallFlowJSON struct {
	Rule       string `json:"rule"`
	SourceCall string `json:"source_call,omitempty"`
	Argument   string `json:"argument,omitempty"`
}

type CallApprovalJSON struct {
	ID        string `json:"id,omitempty"`
	Rule      string `json:"rule"`
	Via       string `json:"via"`
	Status    string `json:"status"`
	DecidedBy string `json:"decided_by,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Note      string `json:"note,omitempty"`
}

func CallToJSON(c *warden.Call) CallJSON {
	b := CallJSON{
		ID:        c.ID,
		SessionID: c.SessionID,
		Caller:    CallerToJSON(c.Caller),
		Tool:      c.Tool,
		Args:      argsJSON(c.Args),
		Risk:      string(c.Risk),
		StartedAt: FormatTime(c.StartedAt),
		Detected:  c.Detected,
	}
	if a := c.Action; a != nil {
		b.Action = &actionJSON{Backend: a.Backend, Kind: a.Kind, Functions: a.Functions,
			Statement: a.Statement, Purpose: a.Purpose}
		for _, op := range a.Ops {
			b.Action.Ops = append(b.Action.Ops, OpJSON{Verb: op.Verb, Object: op.Object, Unfiltered: op.Unfiltered})
		}
	}
	if a := c.Approval; a != nil {
		b.Hash = c.Hash
		b.Approval = &CallApprovalJSON{ID: a.ID, Rule: a.Rule, Via: a.Via, Status: string(a.Status),
			DecidedBy: a.DecidedBy, Reason: a.Reason, Note: a.Note}
	}
	if f := c.Flow; f != nil {
		b.Flow = &CallFlowJSON{Rule: f.Rule, SourceCall: f.SourceCall, Argument: f.Argument}
	}
	if d := c.Decision; d != nil {
		b.Decision = &DecisionJSON{Effect: string(d.Effect), Rule: d.Rule, Reasons: d.Reasons, Allowed: d.Allowed}
	}
	return b
}

func CallerToJSON(c *warden.Caller) *CallerJSON {
	if c == nil {
		return nil
	}
	return &CallerJSON{Subject: c.Subject, Issuer: c.Issuer, Email: c.Email, Groups: c.Groups, Method: c.Method}
}

// argsJSON returns the arguments as recorded: the JSON as given (compacted
// by encoding/json), or, if they are not valid JSON, the exact bytes as a
// JSON string (invalid UTF-8 replaced), so a malformed request is still
// recorded.
func argsJSON(args json.RawMessage) json.RawMessage {
	if len(args) == 0 || json.Valid(args) {
		return args
	}
	quoted, _ := json.Marshal(string(args)) // cannot fail for a string
	return quoted
}

// WritePrivateFile writes data to path with mode 0600, replacing any file
// there, synced with its directory.
func WritePrivateFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = SyncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// jsonUnmarshal decodes a stored body.
func jsonUnmarshal(body string, v any) error { return json.Unmarshal([]byte(body), v) }

// finishRecordSize is room for a call_finish record's fields besides the
// result (without arguments, about 600 bytes).
const finishRecordSize = 1024

// FinishRecord is the body of c's call_finish record, encoded, and the
// time it names. started says the call_start record already holds the
// arguments and action, which are then left out. The result is written as
// the bytes the agent receives (Result.JSON, encoded or checked once by
// the pipeline), spliced in rather than encoded again. resultErr, when
// set, says the result could not be encoded: the record says so and the
// result is withheld; the store must still write the record and report
// resultErr. err means no record could be made.
func FinishRecord(c *warden.Call, started bool) (text, endedAt string, resultErr, err error) {
	body := CallToJSON(c)
	if started {
		body.Args, body.Action, body.ArgsIn = nil, nil, KindCallStart
	}
	body.Outcome = c.Outcome()
	body.EndedAt = FormatTime(c.EndedAt)
	body.DurationMS = float64(c.EndedAt.Sub(c.StartedAt)) / float64(time.Millisecond)
	if c.Err != nil {
		body.Error = &ErrorJSON{Code: string(c.Err.Code), Message: c.Err.Message}
		if c.Err.Err != nil {
			body.Error.Detail = c.Err.Err.Error()
		}
	}
	var raw json.RawMessage
	if c.Result != nil {
		body.Count = c.Result.Count
		body.Truncated = c.Result.Truncated
		if c.Result.JSON != nil {
			raw = c.Result.JSON
		} else {
			var text string
			text, resultErr = Encode(c.Result.Structured)
			body.Result = json.RawMessage(text)
		}
		if resultErr != nil {
			resultErr = fmt.Errorf("encoding result: %w", resultErr)
			body.Result = nil
			body.Outcome = "error"
			body.Error = &ErrorJSON{Code: string(warden.Internal),
				Message: "the result could not be recorded, so it was withheld", Detail: resultErr.Error()}
		}
	}
	// One buffer, sized for the result, holds the whole record.
	var b bytes.Buffer
	b.Grow(len(raw) + finishRecordSize)
	if err := encode(&b, body); err != nil {
		return "", "", nil, err
	}
	if raw != nil {
		// body encodes to an object with fields, so it ends in "}".
		b.Truncate(b.Len() - 1)
		b.WriteString(`,"result":`)
		b.Write(raw)
		b.WriteByte('}')
	}
	return ownedString(b.Bytes()), body.EndedAt, resultErr, nil
}
