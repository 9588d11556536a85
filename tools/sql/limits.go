package sql

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/warden-mcp/warden"
)

// Bounds checked on a statement's text before it reaches the parser.
//
// The parser is PostgreSQL's own, in C, called through cgo on a thread
// stack of fixed size. A left-deep chain of operators (`1+1+1+...`,
// `x::int::int...`, `'a'||'a'||...`) becomes a parse tree as deep as the
// chain is long, and a chain of about 24,000 operators overflows an 8 MiB
// stack (about 9,000 with 2 MiB): SIGSEGV inside cgo, which no recover can
// catch. Bison's own stack bounds nesting of parentheses (it answers
// "memory exhausted"), but nothing bounds those chains. So before parsing,
// the statement is tokenised by PostgreSQL's lexer (flat, linear, no
// recursion) and an upper bound on the tree's depth is computed from the
// tokens; a statement whose bound exceeds maxDepthBound is refused.
const (
	// DefaultMaxStatementBytes is the default of max_statement_bytes.
	DefaultMaxStatementBytes = 64 << 10
	// maxDepthBound is far below the depth that crashes the parser on a
	// 1 MiB stack, and far above any statement a person or an agent writes.
	maxDepthBound = 3000
	// maxTokens bounds the work of everything after the lexer.
	maxTokens = 50000
)

// Analysing a statement costs CPU in proportion to its parse tree: up to
// about 30 µs a token for the costliest shapes (`SELECT 1+1, 1+1, ...`),
// where PostgreSQL's parser, libpg_query's protobuf output (twice: the
// statement and its rewrite), the deparser and the comparison of the two
// trees each visit every node. A statement under the default
// max_statement_bytes can take more than a second of a core, and
// analysis comes before policy, so any caller of sql_query can ask for
// it. Statements longer than largeStatement are therefore analysed only
// in one of largeAnalyses' slots, half the process's cores (at least
// one): however many such statements arrive at once, from however many
// callers, the other cores go on serving everything else, which never
// waits for a slot. A call that does not get a slot within
// largeStatementWait is refused as unavailable, with a reason.
const largeStatement = 4 << 10

var (
	largeAnalyses      = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
	largeStatementWait = 10 * time.Second
)

// largeAnalysisSlot waits for a slot to analyse a large statement in, at
// most largeStatementWait, and returns its release.
func largeAnalysisSlot(ctx context.Context) (release func(), err error) {
	release = func() { <-largeAnalyses }
	select { // a free slot needs no timer
	case largeAnalyses <- struct{}{}:
		return release, nil
	default:
	}
	timer := time.NewTimer(largeStatementWait)
	defer timer.Stop()
	select {
	case largeAnalyses <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, warden.Wrap(warden.Unavailable, ctx.Err(), "the call was cancelled while it waited for its statement to be analysed")
	case <-timer.C:
		return nil, warden.Errorf(warden.Unavailable, "warden is busy analysing other statements over %d KiB, and this one waited %s for its turn; "+
			"retry later, or send a shorter statement (pass long lists as params, as in = ANY($1))", largeStatement>>10, largeStatementWait)
	}
}

// checkSize refuses a statement longer than maxBytes, before any work.
func checkSize(sql string, maxBytes int) error {
	if len(sql) > maxBytes {
		return &warden.Error{Code: warden.Invalid, Rule: "sql.size",
			Message: sizeMessage(len(sql), maxBytes)}
	}
	return nil
}

// checkDepth refuses a statement whose parse tree could be too deep for
// the parser to handle safely. It must run before every pg_query parse of
// text an agent sent.
//
// The depth bound: between separators that build lists rather than depth
// (`,`, `;`, AND and OR, which PostgreSQL's grammar flattens into one node,
// and CASE's WHEN/THEN/ELSE), every token that is not an identifier, a
// literal or a comment may add one level (an operator, a cast, a keyword
// such as NOT or UNION). Each parenthesis, bracket or CASE ... END adds a
// level too. The
// bound of a group is its longest run of such tokens plus the bound of its
// deepest sub-group, and the statement's bound is its outermost group's.
// It over-counts (keywords such as SELECT count) and never under-counts.
func checkDepth(sql string) error {
	if len(sql) > 1<<20 {
		// Callers check the configured size first; this is the ceiling.
		return checkSize(sql, 1<<20)
	}
	scan, err := pg_query.Scan(sql)
	if err != nil {
		return syntaxError(err)
	}
	if depthBound(scan.Tokens) > maxDepthBound {
		return &warden.Error{Code: warden.Invalid, Rule: "sql.depth",
			Message: "the statement nests too deeply (a chain of thousands of operators, casts or parentheses); " +
				"rewrite it with lists (IN (...), VALUES, arrays) or split it"}
	}
	if len(scan.Tokens) > maxTokens {
		return &warden.Error{Code: warden.Invalid, Rule: "sql.size",
			Message: "the statement has too many tokens for warden to analyse; split it into smaller statements"}
	}
	return nil
}

func sizeMessage(n, limit int) string {
	return fmt.Sprintf("the statement is %d bytes, over this database's limit of %d (max_statement_bytes); "+
		"pass large values as params or split the statement", n, limit)
}

// depthBound computes the bound described on checkBounds.
func depthBound(tokens []*pg_query.ScanToken) int {
	type group struct {
		run, longest, child int
		isCase              bool
	}
	stack := []group{{}}
	for _, t := range tokens {
		top := &stack[len(stack)-1]
		switch t.Token {
		case pg_query.Token_ASCII_40, pg_query.Token_ASCII_91, pg_query.Token_CASE: // ( [ CASE
			stack = append(stack, group{isCase: t.Token == pg_query.Token_CASE})
		case pg_query.Token_ASCII_41, pg_query.Token_ASCII_93, pg_query.Token_END_P: // ) ] END
			if len(stack) == 1 || (t.Token == pg_query.Token_END_P) != top.isCase {
				// Unbalanced: the parser will say so. (END outside CASE
				// is a keyword like any other.)
				top.run++
				continue
			}
			closed := groupBound(top.run, top.longest, top.child)
			stack = stack[:len(stack)-1]
			if p := &stack[len(stack)-1]; closed > p.child {
				p.child = closed
			}
		case pg_query.Token_ASCII_44, pg_query.Token_ASCII_59, // , ;
			pg_query.Token_AND, pg_query.Token_OR,
			pg_query.Token_WHEN, pg_query.Token_THEN, pg_query.Token_ELSE:
			top.longest, top.run = max(top.longest, top.run), 0
		case pg_query.Token_IDENT, pg_query.Token_UIDENT, pg_query.Token_ASCII_46, // .
			pg_query.Token_ICONST, pg_query.Token_FCONST, pg_query.Token_SCONST,
			pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST,
			pg_query.Token_PARAM, pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
		default:
			top.run++
		}
	}
	// Unclosed groups: fold them into their parents.
	bound := 0
	for i := len(stack) - 1; i >= 0; i-- {
		g := stack[i]
		bound = groupBound(g.run, g.longest, max(g.child, bound))
	}
	return bound
}

func groupBound(run, longest, child int) int {
	// Two levels for the flattened AND/OR nodes of the group, one for the
	// group itself.
	return max(run, longest) + child + 3
}

// parse is the one way agent-sent SQL reaches the parser: refusing a NUL
// byte (libpg_query reads a C string, so anything after a NUL would be
// invisible to the parser but not necessarily to the server) and a
// statement too deep to parse safely first.
func parse(sql string) (*pg_query.ParseResult, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		return nil, warden.Errorf(warden.Invalid, "the statement contains a NUL byte")
	}
	if err := checkDepth(sql); err != nil {
		return nil, err
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, syntaxError(err)
	}
	return tree, nil
}

// rowSize is an upper bound on the bytes a row of toJSON values takes in
// the encoded result, computed without encoding it: strings are counted
// with their escapes (a control character takes six bytes), so a result
// of control characters cannot grow past max_result_bytes once encoded.
func rowSize(row []any) int {
	n := 2 + len(row) // [ ] and commas
	for _, v := range row {
		n += valueSize(v)
	}
	return n
}

func valueSize(v any) int {
	switch t := v.(type) {
	case nil:
		return 4
	case string:
		return stringSize(t)
	case json.RawMessage:
		return len(t)
	case json.Number:
		return len(t)
	case []any:
		return rowSize(t)
	case map[string]any:
		n := 2 + len(t)
		for k, e := range t {
			n += stringSize(k) + 1 + valueSize(e)
		}
		return n
	default: // numbers, booleans
		return 24
	}
}

func stringSize(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20:
			n += 6
		case c == '"' || c == '\\':
			n += 2
		default:
			n++
		}
	}
	// Invalid UTF-8 is written as U+FFFD (three bytes for one); counting
	// each byte as three covers it without a second pass.
	if !utf8.ValidString(s) {
		n += 2 * len(s)
	}
	return n
}

// limitRows wraps a query so that the server stops once it has produced
// one row more than max_rows (the extra row says the result is truncated).
// Without it, the server runs a huge scan to the end, or into the statement
// timeout, while warden reads and discards what it will not return; with
// it, the planner also prefers plans that produce first rows fast. The
// subquery keeps the query's columns, their names and types, and its
// ORDER BY. query is one statement's own text (no trailing semicolon); the
// newline ends a trailing -- comment.
func limitRows(query string, maxRows int) string {
	return "SELECT * FROM (\n" + query + "\n) AS warden_rows LIMIT " + strconv.Itoa(maxRows+1)
}
