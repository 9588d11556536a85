package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/warden-mcp/warden"
)

// explain plans one tool call as a given caller and prints what warden
// would decide, without executing anything. Planning may read the
// database's catalog (to resolve names and masking), never its data.
func (m *Main) explain(ctx context.Context, args []string) error {
	fs := m.flags("explain")
	config := fs.String("config", "warden.yaml", "config file")
	as := fs.String("as", "", "the caller, SUBJECT[:group,...] (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *as == "" || fs.NArg() < 1 {
		return usagef("explain needs --as SUBJECT[:group,...] and a tool name, then key=value arguments")
	}
	tool := fs.Arg(0)
	callArgs, err := explainArgs(fs.Args()[1:])
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(callArgs)
	cfg, err := m.loadConfig(*config)
	if err != nil {
		return err
	}
	app, err := m.Provision(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	t, ok := app.Pipeline.Tools.Lookup(tool)
	if !ok {
		var names []string
		for _, t := range app.Pipeline.Tools.Tools() {
			names = append(names, t.Spec().Name)
		}
		return usagef("unknown tool %q; warden's tools are %s", tool, strings.Join(names, ", "))
	}
	caller := parseAs(*as)
	w := m.Stdout
	fmt.Fprintf(w, "caller    %s (roles: %s)\n", caller.Subject, strings.Join(orNone(app.Policy.RolesFor(caller)), ", "))
	action, err := t.Plan(warden.WithCaller(ctx, caller), raw)
	if err != nil {
		e := warden.AsError(err)
		fmt.Fprintf(w, "decision  %s by %s\n", e.Code, orDash(e.Rule))
		writeLines(w, "reason    ", e.Message)
		return exitStatus(1)
	}
	fmt.Fprintf(w, "tool      %s on %s (%s), risk %s\n", tool, action.Backend, action.Kind, warden.Classify(action))
	for _, op := range action.Ops {
		fmt.Fprintf(w, "op        %s\n", op)
	}
	if len(action.Functions) > 0 {
		fmt.Fprintf(w, "functions %s\n", strings.Join(action.Functions, ", "))
	}
	d := app.Policy.Authorize(caller, action)
	fmt.Fprintf(w, "decision  %s by %s\n", d.Effect, d.Rule)
	for _, r := range d.Reasons {
		writeLines(w, "reason    ", r)
	}
	for _, a := range d.Allowed {
		fmt.Fprintf(w, "allowed   %s\n", a)
	}
	if d.Effect == warden.Allow && app.Flows != nil {
		lines, err := app.Flows.Explain(ctx, caller, action, raw)
		if err != nil {
			return err
		}
		for _, l := range lines {
			fmt.Fprintf(w, "flow      %s\n", l)
		}
	}
	if d.Effect == warden.Allow && app.Approvals != nil {
		r, est := app.Approvals.Rule(ctx, action, t)
		if est != nil {
			fmt.Fprintf(w, "estimate  %d rows\n", *est)
		}
		if r != nil {
			fmt.Fprintf(w, "approval  needed: rule %s\n", r.Describe())
			return exitStatus(1)
		}
		fmt.Fprintln(w, "approval  none: no approval rule holds this call")
	}
	if d.Effect != warden.Allow {
		return exitStatus(1)
	}
	return nil
}

// explainArgs reads explain's key=value and key:=json arguments.
func explainArgs(args []string) (map[string]any, error) {
	callArgs := map[string]any{}
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || k == ":" {
			return nil, usagef("argument %q is neither key=value nor key:=json", kv)
		}
		if name, isJSON := strings.CutSuffix(k, ":"); isJSON {
			var parsed any
			if err := json.Unmarshal([]byte(v), &parsed); err != nil {
				return nil, usagef("argument %s:=%s: the value is not JSON: %v", name, v, err)
			}
			callArgs[name] = parsed
			continue
		}
		// A value that starts like a JSON array or object and is one is
		// passed as such (params=[42]); anything else is a string.
		if strings.HasPrefix(v, "[") || strings.HasPrefix(v, "{") {
			var parsed any
			if err := json.Unmarshal([]byte(v), &parsed); err == nil {
				callArgs[k] = parsed
				continue
			}
		}
		callArgs[k] = v
	}
	return callArgs, nil
}

// writeLines prints text that may span lines as lines, each after label
// (or its width in spaces), with control characters escaped.
func writeLines(w io.Writer, label, text string) {
	pad := strings.Repeat(" ", len(label))
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if i > 0 {
			label = pad
		}
		fmt.Fprintf(w, "%s%s\n", label, warden.Printable(strings.TrimSuffix(l, "\r")))
	}
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
