package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	callArgs := map[string]any{}
	for _, kv := range fs.Args()[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("argument %q is not key=value", kv)
		}
		var parsed any
		// Values that are JSON (numbers, arrays, objects) are passed as
		// such; anything else is a string.
		if strings.HasPrefix(v, "[") || strings.HasPrefix(v, "{") {
			if err := json.Unmarshal([]byte(v), &parsed); err == nil {
				callArgs[k] = parsed
				continue
			}
		}
		callArgs[k] = v
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
		return fmt.Errorf("unknown tool %q", tool)
	}
	caller := parseAs(*as)
	w := m.Stdout
	fmt.Fprintf(w, "caller    %s (roles: %s)\n", caller.Subject, strings.Join(orNone(app.Policy.RolesFor(caller)), ", "))
	action, err := t.Plan(warden.WithCaller(ctx, caller), raw)
	if err != nil {
		e := warden.AsError(err)
		fmt.Fprintf(w, "decision  %s by %s\nreason    %s\n", e.Code, orDash(e.Rule), e.Message)
		return nil
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
		fmt.Fprintf(w, "reason    %s\n", r)
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
		if r == nil {
			fmt.Fprintln(w, "approval  none: no approval rule holds this call")
		} else {
			fmt.Fprintf(w, "approval  needed: rule %s\n", r.Describe())
		}
	}
	return nil
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
