package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Help for every command comes from one place: its lines in usage (so a
// new command is covered once it has a usage line), the paragraph in
// about, and its flags as the command declared them. `warden CMD -h`,
// `warden CMD --help` and `warden help CMD` print it to standard output
// and exit 0; a usage error prints the command's usage lines to standard
// error and exits 2.

// about says more about a command than its usage line can.
var about = map[string]string{
	"serve": `Serves the MCP tools the config grants, over stdio (one local caller) or
HTTP: --transport http serves streamable HTTP at /mcp, --transport sse
serves SSE at /sse with messages posted to /message. On start it prints
the endpoint URLs. Stop it with Ctrl-C (SIGINT) or SIGTERM.`,
	"check": `Validates the config and prints what it allows: backends, roles, grants and
approval rules. With --as, the roles and grants of that caller. Without
--connect it connects to nothing; with it, it also tries every backend and
checks that the tables, columns and namespaces the config names exist.`,
	"init": `Connects to a PostgreSQL database, reads its schema and a sample of its values,
and writes a starting config: the backend (its DSN as ${VAR}, never the
password), a read-only role, a masking rule for every column that looks
sensitive with the reason in a comment, detectors on, and one approval rule
for writes. Sampled values are never printed or written.`,
	"explain": `Plans one tool call as the given caller and prints what warden would decide:
the operations it found, the rule that allows or denies them, and whether an
approval rule would hold the call. Nothing is executed; planning may read a
database's catalog (names, masking), never its data.

Arguments are key=value, one per argument of the tool:
  key=text     the value is the string "text" (no quoting needed beyond
               your shell's), except that text starting with [ or { is
               parsed as JSON: params=[42,"x"]
  key:=json    the value is parsed as JSON: limit:=5, flag:=true,
               name:='"007"' (a string that looks like a number)

Example:
  warden explain --as alice@example.com:analysts sql_query database=shop \
      sql='UPDATE orders SET status = $1 WHERE id = $2' params='["refunded", 42]'

Exit status: 0 the call would be allowed and run; 1 it would not run as
given (denied, held for approval, invalid arguments) or warden could not
decide (for example, the config does not load); 2 a usage error, such as an
unknown tool (the known ones are listed).`,
	"demo": `Creates the database warden_demo (--database) on a PostgreSQL server and tours warden with
a real MCP client: allowed and refused calls, masking, approvals over both
the 2025-11-25 (elicitation/create) and 2026-07-28 (input_required)
protocols, one call over streamable HTTP, and the recording, verified and
caught when tampered with. Its config and recording go to a new temporary
directory, so it never touches another recording; it refuses to start while
warden_demo is in use (for example, by a warden serve from an earlier demo).`,
	"sessions":      "Reads the recording, read-only: it works beside a running warden serve and on a copy.",
	"sessions list": `Lists recorded sessions, newest first.`,
	"sessions show": `Prints one session and each of its calls: the decision, the rule, the
statement, the result's size.`,
	"sessions replay": `Prints one session as a transcript of what the agent sent and received.`,
	"sessions verify": `Verifies the recording's hash chain, its signed checkpoints, its signed head
and each record's MAC, and says what that establishes. Exit status 1 when
anything does not verify.`,
	"sessions export": `Writes the recording as JSON lines, one record per line, to standard output;
sessions verify --export FILE verifies such a file.`,
	"approvals":      "Lists, shows and decides approval requests.",
	"approvals list": `Lists approval requests: pending ones unless --all or --status says otherwise.`,
	"approvals show": `Prints one approval request: the call it holds, who asked, its history.`,
	"approvals approve": `Approves one request as a reviewer (the subject of --token or $WARDEN_TOKEN,
or identity.local where the config makes it a reviewer). The approved call
runs once, when the agent calls again with the approval_id.`,
	"approvals deny": `Denies one request as a reviewer; the reason is shown to the agent.`,
	"version":        `Prints warden's version.`,
}

// groups are the commands that only hold subcommands.
var groups = map[string]bool{"sessions": true, "approvals": true}

func isHelpArg(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// helpRequested is what parse returns for -h or --help: Run prints the
// command's help to standard output and exits 0.
type helpRequested struct {
	command string
	fs      *flag.FlagSet
}

func (h *helpRequested) Error() string { return "help requested for " + h.command }

// exitStatus ends the program with a status and no further message: the
// command has already said what happened.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// commandOf is the command a flag set belongs to ("sessions list").
func commandOf(fs *flag.FlagSet) string { return strings.TrimPrefix(fs.Name(), "warden ") }

// synopsis returns the usage lines of a command, or of every subcommand
// of a group.
func synopsis(command string) []string {
	var lines []string
	for _, l := range strings.Split(usage, "\n") {
		if !strings.HasPrefix(l, "  warden ") {
			continue
		}
		l = strings.TrimSpace(l)
		rest, ok := strings.CutPrefix(l, "warden "+command)
		if ok && (rest == "" || rest[0] == ' ') {
			lines = append(lines, l)
		}
	}
	return lines
}

// writeHelp prints a command's help: usage lines, what it does, flags.
func writeHelp(w io.Writer, command string, fs *flag.FlagSet) {
	lines := synopsis(command)
	if len(lines) == 0 {
		lines = []string{"warden " + command}
	}
	fmt.Fprintf(w, "Usage:\n  %s\n", strings.Join(lines, "\n  "))
	if a := about[command]; a != "" {
		fmt.Fprintf(w, "\n%s\n", a)
	}
	if groups[command] {
		fmt.Fprintf(w, "\nRun 'warden %s SUBCOMMAND --help' for a subcommand's flags.\n", command)
	}
	if fs != nil {
		writeFlags(w, fs)
	}
}

// writeUsageError prints a usage error and the command's usage lines.
func writeUsageError(w io.Writer, command, msg string) {
	fmt.Fprintf(w, "warden: %s\n", msg)
	lines := synopsis(command)
	if command == "" || len(lines) == 0 {
		fmt.Fprintf(w, "\n%s", usage)
		return
	}
	fmt.Fprintf(w, "\nUsage:\n  %s\n\nRun 'warden %s --help' for details.\n", strings.Join(lines, "\n  "), command)
}

// argName is a back-quoted placeholder in a flag's usage: `FILE`,
// `SUBJECT[:group,...]`. Other back-quoted text (a command, `${VAR}`) is
// part of the sentence and is printed as written; flag.PrintDefaults
// would take it for the placeholder.
var argName = regexp.MustCompile("`([A-Z][A-Z0-9_]*(?:[\\[:|,.\\]][A-Za-z0-9_:|,.\\[\\]]*)?)`")

// writeFlags prints a flag set's flags as users type them (--name VALUE),
// with their defaults.
func writeFlags(w io.Writer, fs *flag.FlagSet) {
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if n == 0 {
			fmt.Fprintln(w, "\nFlags:")
		}
		n++
		name, text := flagArg(f)
		head := "  --" + f.Name
		if name != "" {
			head += " " + name
		}
		fmt.Fprintf(w, "%s\n        %s", head, strings.ReplaceAll(text, "\n", "\n        "))
		if def := f.DefValue; def != "" && def != "0" && def != "false" && def != "0s" {
			if strings.HasSuffix(fmt.Sprintf("%T", f.Value), "stringValue") {
				def = fmt.Sprintf("%q", def)
			}
			fmt.Fprintf(w, " (default %s)", def)
		}
		fmt.Fprintln(w)
	})
}

// placeholders name the values of warden's common flags.
var placeholders = map[string]string{
	"config": "FILE", "head": "FILE", "export": "FILE", "out": "FILE",
	"pubkey": "FILE|BASE64", "as": "SUBJECT[:group,...]", "subject": "SUBJECT",
	"since": "WHEN", "until": "WHEN", "tool": "TOOL", "token": "TOKEN", "reason": "TEXT",
	"listen": "HOST:PORT", "transport": "stdio|http|sse", "database-url": "URL", "dsn": "URL",
	"status": "STATUS", "format": "FORMAT", "schema": "SCHEMA,...", "database": "NAME", "dir": "DIR",
}

// flagArg returns the placeholder a flag's value is shown with and its
// usage text.
func flagArg(f *flag.Flag) (name, text string) {
	text = f.Usage
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "", text
	}
	if m := argName.FindStringSubmatchIndex(text); m != nil {
		name = text[m[2]:m[3]]
		return name, text[:m[0]] + name + text[m[1]:]
	}
	if n := placeholders[f.Name]; n != "" {
		return n, text
	}
	switch t := fmt.Sprintf("%T", f.Value); {
	case strings.HasSuffix(t, "intValue"), strings.HasSuffix(t, "uintValue"):
		return "N", text
	case strings.HasSuffix(t, "durationValue"):
		return "DURATION", text
	}
	return "VALUE", text
}
