package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

func (m *Main) sessions(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("sessions needs a subcommand: list or show ID")
	}
	fs := m.flags("sessions " + args[0])
	config := fs.String("config", "warden.yaml", "config file")
	subject := fs.String("subject", "", "only sessions of this subject")
	since := fs.String("since", "", "only sessions started within this duration (1h, 7d)")
	limit := fs.Int("limit", 50, "at most this many sessions")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := m.loadConfig(*config)
	if err != nil {
		return err
	}
	store, err := recorder.Open(ctx, cfg.Store.URL)
	if err != nil {
		return fmt.Errorf("open the recording store: %w", err)
	}
	defer store.Close()
	switch args[0] {
	case "list":
		f := recorder.SessionFilter{Subject: *subject, Limit: *limit}
		if *since != "" {
			d, err := warden.ParseDuration(*since)
			if err != nil {
				return usagef("--since: %v", err)
			}
			f.Since = m.Clock().Add(-d)
		}
		list, err := store.Sessions(ctx, f)
		if err != nil {
			return err
		}
		return recorder.WriteSessionList(m.Stdout, list)
	case "show":
		if fs.NArg() != 1 {
			return usagef("sessions show needs exactly one session id")
		}
		s, calls, err := store.Session(ctx, fs.Arg(0))
		if errors.Is(err, recorder.ErrNotFound) {
			return fmt.Errorf("no session %q in %s", fs.Arg(0), cfg.Store.URL)
		}
		if err != nil {
			return err
		}
		return recorder.WriteSession(m.Stdout, s, calls)
	}
	return usagef("unknown sessions subcommand %q (list or show ID)", args[0])
}
