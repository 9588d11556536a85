package sql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
)

// Backends is the set of configured PostgreSQL backends, by name.
type Backends map[string]*Backend

func (bs Backends) lookup(name string) (*Backend, error) {
	if name == "" {
		return nil, warden.Errorf(warden.Invalid, "missing argument \"database\"")
	}
	b, ok := bs[name]
	if !ok {
		return nil, warden.Errorf(warden.Invalid, "unknown database %q: use one of the values listed in the tool's input schema", name)
	}
	return b, nil
}

// Close closes every pool.
func (bs Backends) Close() {
	for _, b := range bs {
		b.Close()
	}
}

// Query is the sql_query tool.
type Query struct {
	Backends Backends
}

type queryArgs struct {
	Database   string            `json:"database"`
	SQL        string            `json:"sql"`
	Params     []json.RawMessage `json:"params"`
	Purpose    string            `json:"purpose"`
	ApprovalID string            `json:"approval_id"`
}

type queryPlan struct {
	backend *Backend
	names   *names
	// sql is the bound statement, deparsed: what was judged is what runs
	// (a query wrapped in its row limit, see limited).
	sql string
	// statement is the bound statement without the row limit: what an
	// approval rule's rows_above estimates.
	statement string
	// params are the caller's values, then the hash pads when a hash mask
	// is used.
	params   []any
	readOnly bool
	// callsCode is set when the statement calls granted functions
	// beyond the harmless built-ins.
	callsCode bool
	// masked annotates result columns that carry masked values.
	masked map[string]string
	// refusal refuses the call at execution, after policy allowed it.
	refusal *warden.Error
	// limited is set when sql is the query wrapped in a LIMIT (see
	// limitRows).
	limited bool
	// changesNames is set when the statement may create, drop or rename
	// relations, functions or types: DDL, or granted code that runs
	// writable.
	changesNames bool
}

// Spec implements warden.Tool.
func (q *Query) Spec() warden.ToolSpec {
	return warden.ToolSpec{
		Name:  "sql_query",
		Title: "Run one SQL statement",
		Description: "Run exactly one SQL statement against a PostgreSQL database through warden. " +
			"Warden checks every table and function the statement touches against your grants, runs reads in a " +
			"read-only transaction with a statement timeout and a row cap, and records the call. " +
			"Bind values with $1..$n and `params` instead of quoting them into the text. " +
			"Use sql_schema first to see the tables and columns you may read.",
		BackendKind: "postgres",
		BackendArg:  "database",
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"database": map[string]any{"type": "string", "description": "The configured database to query."},
				"sql":      map[string]any{"type": "string", "description": "Exactly one SQL statement; use $1, $2, ... for parameters."},
				"params": map[string]any{"type": "array", "description": "Values bound to $1..$n, in order.",
					"items": map[string]any{"type": []string{"string", "number", "boolean", "null", "object", "array"}}},
				"purpose":     map[string]any{"type": "string", "description": "Why you are running this statement; recorded and shown to approvers."},
				"approval_id": map[string]any{"type": "string", "description": "The approval id of a call that was held for approval."},
			},
			"required":             []string{"database", "sql"},
			"additionalProperties": false,
		},
	}
}

// Plan implements warden.Tool: it decodes the arguments, binds the
// statement on the PostgreSQL parse tree against the catalog snapshot and
// rewrites it into the statement that runs. It sends the backend nothing
// about this call: a caller that policy refuses learns nothing about
// columns, types or masking rules.
func (q *Query) Plan(ctx context.Context, raw json.RawMessage) (*warden.Action, error) {
	var args queryArgs
	if err := warden.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	b, err := q.Backends.lookup(args.Database)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(args.SQL) == "" {
		return nil, warden.Errorf(warden.Invalid, "missing argument \"sql\"")
	}
	params, err := decodeParams(args.Params)
	if err != nil {
		return nil, err
	}
	if err := checkSize(args.SQL, b.cfg.MaxStatementBytes); err != nil {
		return nil, err
	}
	n, err := b.catalog(ctx)
	if err != nil {
		return nil, b.unavailable(err)
	}
	if err := b.maskingReady(n); err != nil {
		return nil, err
	}
	an, err := n.analyze(ctx, args.SQL, len(params))
	if err != nil {
		return nil, err
	}
	if an.HashParams > 0 {
		inner, outer := b.masker.HMACPads()
		if strings.HasPrefix(an.Kind, "explain") {
			// A plan prints bound values as constants: show it a key
			// that exists for this call only.
			inner, outer = mask.RandomPads()
		}
		params = append(params, inner, outer)
	}
	code := callsCode(an.Ops)
	sql, limited := an.Text, an.ReadOnly && an.Kind == "select"
	if limited {
		sql = limitRows(an.Text, b.cfg.MaxRows)
	}
	return &warden.Action{
		Tool:       "sql_query",
		Backend:    b.Name,
		Kind:       an.Kind,
		Ops:        an.Ops,
		Functions:  an.Functions,
		Statement:  args.SQL,
		Purpose:    args.Purpose,
		ApprovalID: args.ApprovalID,
		Params:     paramTexts(args.Params),
		Plan: &queryPlan{
			backend: b, names: n, sql: sql, statement: an.Text, params: params, limited: limited,
			readOnly: an.ReadOnly, callsCode: code, masked: an.Masked, refusal: an.Refusal,
			changesNames: !an.ReadOnly && (code || changesNames(an.Ops)),
		},
	}, nil
}

// paramTexts is each parameter as the JSON the agent sent.
func paramTexts(raw []json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = string(r)
	}
	return out
}

func changesNames(ops []warden.Op) bool {
	for _, op := range ops {
		if op.Verb == warden.VerbDDL {
			return true
		}
	}
	return false
}

func callsCode(ops []warden.Op) bool {
	for _, op := range ops {
		if op.Verb == warden.VerbExecute {
			return true
		}
	}
	return false
}

// decodeParams turns JSON values into the text of SQL literals. pgx sends
// strings in the text format, so PostgreSQL parses each one as the
// parameter's type, exactly as it would a quoted literal: 42 binds to an
// integer, numeric or text parameter alike, "2025-01-02" to a date,
// {"a": 1} to jsonb, and numbers keep their exact digits. Binding Go values
// instead fails inside pgx for every pair it has no conversion for (an
// int64 into a text parameter, a bool into text), before PostgreSQL sees
// the statement.
func decodeParams(raw []json.RawMessage) ([]any, error) {
	out := make([]any, len(raw))
	for i, r := range raw {
		var v any
		dec := json.NewDecoder(strings.NewReader(string(r)))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, warden.Errorf(warden.Invalid, "params[%d] is not a JSON value", i)
		}
		switch t := v.(type) {
		case nil:
			out[i] = nil
		case string:
			out[i] = t
		case json.Number:
			out[i] = t.String()
		case bool:
			out[i] = strconv.FormatBool(t)
		default: // objects and arrays, as JSON text
			out[i] = string(r)
		}
	}
	return out, nil
}

// Column describes one result column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Masked reports that the column's values were masked.
	Masked bool `json:"masked"`
	// Mask names the strategy and the masked column(s) it follows, so an
	// agent knows it is looking at a mask and does not "fix" it.
	Mask string `json:"mask,omitempty"`
}

// QueryResult is what sql_query returns. Its JSON (what MarshalJSON
// returns, and the Result's JSON) is {"columns", "rows", "row_count",
// "truncated", "note" when set, "command", "call_id"}.
type QueryResult struct {
	Columns   []Column
	RowCount  int64
	Truncated bool
	// Note says why a result was truncated.
	Note string
	// Command is PostgreSQL's command tag, such as "INSERT 0 3".
	Command string
	CallID  string

	// rows holds the rows written by collect until encode; json is the
	// encoding encode wrote.
	rows *rowWriter
	json json.RawMessage
}

// MarshalJSON returns the result's encoding.
func (r *QueryResult) MarshalJSON() ([]byte, error) {
	if r.json == nil {
		r.encode()
	}
	return r.json, nil
}

// Rows returns each row's cells as JSON, decoded from the result's
// encoding: nothing in a call reads them (the result leaves as its
// JSON), so they are not built for every call.
func (r *QueryResult) Rows() [][]json.RawMessage {
	var v struct {
		Rows [][]json.RawMessage `json:"rows"`
	}
	b, _ := r.MarshalJSON()
	if err := json.Unmarshal(b, &v); err != nil {
		panic("sql: a query result's own encoding does not decode: " + err.Error())
	}
	return v.Rows
}

// Execute implements warden.Tool. Reads run in BEGIN READ ONLY; writes in a
// read-write transaction that commits only if the statement succeeded.
func (q *Query) Execute(ctx context.Context, a *warden.Action) (*warden.Result, error) {
	p, ok := a.Plan.(*queryPlan)
	if !ok {
		return nil, warden.Errorf(warden.Internal, "sql_query: action carries no plan")
	}
	if p.refusal != nil {
		return nil, p.refusal
	}
	res, err := p.backend.run(ctx, p, a)
	if err != nil {
		return nil, err
	}
	res.CallID = a.CallID
	// encode writes JSON by construction (TestEncodersWriteJSON,
	// TestRowJSONMatchesValuesConversion): the pipeline need not check it.
	return &warden.Result{Structured: res, JSON: res.encode(), JSONValid: true, Count: res.RowCount, Truncated: res.Truncated}, nil
}

// acquire takes a connection for p; release gives it back, or closes it
// when p calls granted functions: they run code warden cannot see, which
// may have changed session state (search_path, read-only default), so the
// connection is not given to the next call.
func (b *Backend) acquire(ctx context.Context, p *queryPlan) (conn *pgxpool.Conn, release func(), err error) {
	conn, err = b.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, b.unavailable(err)
	}
	return conn, func() {
		if p.callsCode {
			_ = conn.Hijack().Close(context.WithoutCancel(ctx))
			return
		}
		conn.Release()
	}, nil
}

func (b *Backend) run(ctx context.Context, p *queryPlan, a *warden.Action) (*QueryResult, error) {
	conn, release, err := b.acquire(ctx, p)
	if err != nil {
		return nil, err
	}
	defer release()
	if p.readOnly {
		return b.runRead(ctx, conn, p)
	}
	opts := pgx.TxOptions{AccessMode: pgx.ReadWrite}
	if a.PreviewDigest != "" {
		// Bound to a preview: the check and the statement share one
		// snapshot (see preview.go).
		opts.IsoLevel = pgx.RepeatableRead
	}
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, b.unavailable(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if a.PreviewDigest != "" {
		if err := b.checkDigest(ctx, tx, p, a, a.PreviewDigest); err != nil {
			return nil, err
		}
	}
	rows, err := tx.Query(ctx, p.sql, p.params...)
	if err != nil {
		return nil, b.boundError(ctx, err, a)
	}
	res, err := b.collect(ctx, rows, p)
	if err != nil {
		return nil, b.boundError(ctx, err, a)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, b.boundError(ctx, err, a)
	}
	// A write that drew from a sequence (a serial or identity default)
	// left currval and lastval set on this connection: the next caller
	// given it must not see them.
	if _, err := conn.Exec(ctx, "DISCARD SEQUENCES"); err != nil {
		// The pool destroys a closed connection instead of reusing it.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
	}
	if p.changesNames {
		// The next call must resolve names against the catalog as this
		// statement left it, or it would be judged on one relation and
		// read another.
		b.forgetNames()
	}
	return res, nil
}

// runRead runs a read as BEGIN READ ONLY; statement; COMMIT, sent as one
// pipeline so the transaction costs no extra round trip. If the statement
// fails, the transaction is left aborted and pgxpool discards the
// connection instead of reusing it.
func (b *Backend) runRead(ctx context.Context, conn *pgxpool.Conn, p *queryPlan) (*QueryResult, error) {
	batch := &pgx.Batch{}
	batch.Queue("BEGIN READ ONLY")
	batch.Queue(p.sql, p.params...)
	batch.Queue("COMMIT")
	br := conn.SendBatch(ctx, batch)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, b.queryError(ctx, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, b.queryError(ctx, err)
	}
	res, err := b.collect(ctx, rows, p)
	if err != nil {
		return nil, err
	}
	if _, err := br.Exec(); err != nil {
		return nil, b.queryError(ctx, err)
	}
	if err := br.Close(); err != nil {
		return nil, b.queryError(ctx, err)
	}
	return res, nil
}

// collect reads at most MaxRows rows and writes them as JSON (see
// rowWriter); the result's encode finishes it.
func (b *Backend) collect(ctx context.Context, rows pgx.Rows, p *queryPlan) (*QueryResult, error) {
	defer rows.Close()
	fds := rows.FieldDescriptions()
	n := p.names
	res := &QueryResult{Columns: make([]Column, len(fds))}
	for i, fd := range fds {
		if _, known := n.types[fd.DataTypeOID]; !known {
			n = b.refreshTypes(ctx)
		}
		res.Columns[i] = Column{Name: fd.Name, Type: n.typeName(fd.DataTypeOID)}
	}
	describeMasks(res, p.masked)
	w := newRowWriter(fds, rows.Conn().TypeMap())
	size, count := 0, 0
	for rows.Next() {
		if count == b.cfg.MaxRows {
			res.Truncated = true
			res.Note = fmt.Sprintf("only the first %d rows are returned (max_rows); add a LIMIT or narrow the WHERE clause", b.cfg.MaxRows)
			break
		}
		m, rs, err := w.write(rows.RawValues())
		if err != nil {
			w.release()
			return nil, warden.Wrap(warden.Internal, err, "could not decode a result row")
		}
		if size += rs; size > b.cfg.MaxResultBytes {
			w.unwrite(m)
			res.Truncated = true
			res.Note = fmt.Sprintf("only the first %d rows are returned: the next would take the result over %d bytes (max_result_bytes); select fewer or shorter columns, or fewer rows", count, b.cfg.MaxResultBytes)
			break
		}
		count++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		w.release()
		return nil, b.queryError(ctx, err)
	}
	res.rows = w
	tag := rows.CommandTag()
	res.Command = tag.String()
	res.RowCount = int64(count)
	if p.limited {
		// The tag counts the row fetched to detect truncation.
		res.Command = "SELECT " + strconv.FormatInt(res.RowCount, 10)
	} else if len(fds) == 0 || !tag.Select() {
		if affected := tag.RowsAffected(); affected > res.RowCount {
			res.RowCount = affected
		}
	}
	return res, nil
}

// boundError is queryError, except that a serialization failure of a call
// bound to a preview means a row it affects changed after the check.
func (b *Backend) boundError(ctx context.Context, err error, a *warden.Action) error {
	var pe *pgconn.PgError
	if a.PreviewDigest != "" && errors.As(err, &pe) && pe.Code == "40001" {
		return warden.Wrap(warden.Denied, err, "the rows this statement affects changed since it was approved; it did not run. Ask again: call without approval_id to request a new approval.")
	}
	var we *warden.Error
	if errors.As(err, &we) {
		return err
	}
	return b.queryError(ctx, err)
}

// encode returns the result's JSON, exactly what encoding/json (without
// HTML escaping) wrote for it when it was a struct of its fields with
// Rows as [][]json.RawMessage. It is called once, when CallID is set.
func (r *QueryResult) encode() json.RawMessage {
	w := r.rows
	r.rows = nil
	var rowBytes []byte
	if w != nil {
		rowBytes = w.buf
	}
	b := make([]byte, 0, 128+64*len(r.Columns)+len(rowBytes)+len(r.Note)+len(r.Command)+len(r.CallID))
	b = append(b, `{"columns":[`...)
	for i, c := range r.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b, _ = appendText(b, c.Name)
		b = append(b, `,"type":`...)
		b, _ = appendText(b, c.Type)
		b = append(b, `,"masked":`...)
		b = strconv.AppendBool(b, c.Masked)
		if c.Mask != "" {
			b = append(b, `,"mask":`...)
			b, _ = appendText(b, c.Mask)
		}
		b = append(b, '}')
	}
	b = append(b, `],"rows":[`...)
	b = append(b, rowBytes...)
	b = append(b, `],"row_count":`...)
	b = strconv.AppendInt(b, r.RowCount, 10)
	b = append(b, `,"truncated":`...)
	b = strconv.AppendBool(b, r.Truncated)
	if r.Note != "" {
		b = append(b, `,"note":`...)
		b, _ = appendText(b, r.Note)
	}
	b = append(b, `,"command":`...)
	b, _ = appendText(b, r.Command)
	b = append(b, `,"call_id":`...)
	b, _ = appendText(b, r.CallID)
	b = append(b, '}')
	if w != nil {
		w.release()
	}
	r.json = b
	return b
}

// queryError translates a PostgreSQL error into an error the agent can act
// on. The server's message is shown (it describes the agent's own
// statement); details that may quote other rows are not.
func (b *Backend) queryError(ctx context.Context, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57014" && ctx.Err() == nil:
			return warden.Wrap(warden.Invalid, err, fmt.Sprintf("the statement was cancelled after the statement timeout of %s; narrow it or add a LIMIT", b.cfg.StatementTimeout.String()))
		case pe.Code == "25006":
			return warden.Wrap(warden.Denied, err, "the statement tried to write inside a read-only transaction")
		case pe.Code == "42501":
			return warden.Wrap(warden.Denied, err, "the database refused the statement: "+pe.Message)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57P"):
			return b.unavailable(err)
		}
		msg := "postgres: " + pe.Message
		if pe.Position > 0 {
			msg += fmt.Sprintf(" (at character %d)", pe.Position)
		}
		if pe.Hint != "" {
			msg += "; hint: " + pe.Hint
		}
		return warden.Wrap(warden.Invalid, err, msg+" [SQLSTATE "+pe.Code+"]")
	}
	var big *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &big) {
		return warden.Wrap(warden.Invalid, err, fmt.Sprintf("a row of the result is larger than %d bytes (max_result_bytes); select fewer or shorter columns", b.cfg.MaxResultBytes))
	}
	if ctx.Err() != nil || isConnectionError(err) {
		return b.unavailable(err)
	}
	// Not the server's and not the network's: pgx refused the request
	// itself (a wrong number of parameters, a value it cannot send).
	return warden.Wrap(warden.Invalid, err, "the statement could not be sent: "+err.Error())
}

// isConnectionError reports whether err is about reaching the server
// rather than about the statement.
func isConnectionError(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || pgconn.SafeToRetry(err)
}

// SortedNames returns the backend names, sorted.
func (bs Backends) SortedNames() []string { return slices.Sorted(maps.Keys(bs)) }

var _ warden.Tool = (*Query)(nil)
