package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

// sessions runs `warden sessions SUBCOMMAND`. Every subcommand opens the
// store read-only: reading, replaying, exporting and verifying never write,
// so they work on a copy handed to an auditor, and beside a running serve.
func (m *Main) sessions(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("sessions needs a subcommand: list, show ID, replay ID, verify or export")
	}
	switch args[0] {
	case "list":
		return m.sessionsList(ctx, args[1:])
	case "show", "replay":
		return m.sessionsShow(ctx, args[0], args[1:])
	case "verify":
		return m.sessionsVerify(ctx, args[1:])
	case "export":
		return m.sessionsExport(ctx, args[1:])
	}
	return usagef("unknown sessions subcommand %q (list, show ID, replay ID, verify or export)", args[0])
}

// openRecording opens the store the config names, read-only. Only the
// config's store and identity are read: the backends' secrets need not be
// set.
func (m *Main) openRecording(ctx context.Context, config string) (recorder.Store, string, error) {
	cfg, err := m.loadRecordingConfig(config)
	if err != nil {
		return nil, "", err
	}
	opts := cfg.Store.Options()
	opts.ReadOnly = true
	store, err := openStore(ctx, cfg.Store.URL, opts)
	if err != nil {
		return nil, "", fmt.Errorf("open the recording store: %w", err)
	}
	return store, storeName(cfg.Store.URL), nil
}

func (m *Main) sessionsList(ctx context.Context, args []string) error {
	fs := m.flags("sessions list")
	config := fs.String("config", "warden.yaml", "config file")
	subject := fs.String("subject", "", "only sessions of this subject")
	since := fs.String("since", "", "only sessions started at or after: a duration ago (1h, 7d) or a time (2025-03-01, RFC 3339)")
	until := fs.String("until", "", "only sessions started before: a duration ago or a time")
	tool := fs.String("tool", "", "only sessions with a call of this tool")
	denied := fs.Bool("denied", false, "only sessions with a denied call")
	limit := fs.Int("limit", 50, "at most this many sessions")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sessions list takes no arguments, got %q", fs.Arg(0))
	}
	f := recorder.SessionFilter{Subject: *subject, Tool: *tool, Denied: *denied, Limit: *limit}
	var err error
	if f.Since, err = m.when(*since); err != nil {
		return usagef("--since: %v", err)
	}
	if f.Until, err = m.when(*until); err != nil {
		return usagef("--until: %v", err)
	}
	store, _, err := m.openRecording(ctx, *config)
	if err != nil {
		return err
	}
	defer store.Close()
	list, err := store.Sessions(ctx, f)
	if err != nil {
		return err
	}
	return WriteSessionList(m.Stdout, list)
}

func (m *Main) sessionsShow(ctx context.Context, sub string, args []string) error {
	fs := m.flags("sessions " + sub)
	config := fs.String("config", "warden.yaml", "config file")
	asJSON := new(bool)
	if sub == "replay" {
		asJSON = fs.Bool("json", false, "print the transcript as JSON")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("sessions %s needs exactly one session id", sub)
	}
	store, url, err := m.openRecording(ctx, *config)
	if err != nil {
		return err
	}
	defer store.Close()
	s, calls, err := store.Session(ctx, fs.Arg(0))
	if errors.Is(err, recorder.ErrNotFound) {
		return fmt.Errorf("no session %q in %s", fs.Arg(0), url)
	}
	if err != nil {
		return err
	}
	switch {
	case sub == "show":
		return WriteSession(m.Stdout, s, calls)
	case *asJSON:
		return WriteReplayJSON(m.Stdout, s, calls)
	}
	return WriteReplay(m.Stdout, s, calls)
}

func (m *Main) sessionsVerify(ctx context.Context, args []string) error {
	flags := m.flags("sessions verify")
	config := flags.String("config", "warden.yaml", "config file")
	pubkey := flags.String("pubkey", "", "verify against this Ed25519 public key (a file, or base64) instead of the key file beside the store")
	printKey := flags.Bool("print-key", false, "print the public key of the store's signing key and exit")
	export := flags.String("export", "", "verify this file written by `sessions export` instead of the store")
	headFile := flags.String("head", "", "check the store against this signed head (default: the head file beside the signing key)")
	reseal := flags.Bool("reseal", false, "after a power loss or a lost head file: verify the chain and every record MAC with the signing key, then sign a new head at the store's last record")
	if err := parse(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usagef("sessions verify takes no arguments, got %q", flags.Arg(0))
	}
	if *reseal {
		if *pubkey != "" || *export != "" || *headFile != "" || *printKey {
			return usagef("--reseal uses the signing key beside the store, and takes only --config")
		}
		return m.sessionsReseal(ctx, *config)
	}
	var key ed25519.PublicKey
	keySource := ""
	if *pubkey != "" {
		var err error
		if key, err = readPublicKey(*pubkey); err != nil {
			return usagef("--pubkey: %v", err)
		}
		keySource = "the key given with --pubkey"
	}

	var store recorder.Store
	var url string
	if *export == "" || key == nil || *printKey {
		var err error
		if store, url, err = m.openRecording(ctx, *config); err != nil {
			if *export != "" {
				return fmt.Errorf("%w\n(to verify an export without the store, pass the key with --pubkey)", err)
			}
			return err
		}
		defer store.Close()
		if key == nil {
			k, err := store.PublicKey()
			switch {
			case err == nil:
				key, keySource = k, store.KeySource()
			case *printKey || !errors.Is(err, fs.ErrNotExist):
				return fmt.Errorf("reading the signing key: %w", err)
			}
		}
	}
	if *printKey {
		_, err := fmt.Fprintln(m.Stdout, recorder.FormatPublicKey(key))
		return err
	}

	var rep *recorder.VerifyReport
	var err error
	what := url
	if *export != "" {
		what = *export
		f, ferr := os.Open(*export)
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		rep, err = recorder.VerifyExport(f, key)
	} else {
		rep, err = store.Audit(ctx, recorder.AuditOptions{Key: key, KeyGiven: *pubkey != "", HeadFile: *headFile})
	}
	if err != nil {
		var ce *recorder.ChainError
		if errors.As(err, &ce) && rep != nil && rep.Records > 0 {
			fmt.Fprintf(m.Stdout, "records %d..%d verified before the problem\n", rep.First, rep.Last)
		}
		return fmt.Errorf("%s does not verify: %w", what, err)
	}
	writeVerifyReport(m.Stdout, what, rep, keySource)
	return nil
}

// sessionsReseal accepts the store's end as it is, once it verifies with
// the signing key, and says what the head named before.
func (m *Main) sessionsReseal(ctx context.Context, config string) error {
	store, url, err := m.openRecording(ctx, config)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, old, err := store.Reseal(ctx)
	if err != nil {
		return fmt.Errorf("%s was not resealed: %w", url, err)
	}
	if old != nil && old.Seq > rep.Last {
		fmt.Fprintf(m.Stdout, "the previous head named record %d (written %s); records %d..%d are gone and this accepts their loss\n",
			old.Seq, warden.Printable(old.At), rep.Last+1, old.Seq)
	}
	fmt.Fprintf(m.Stdout, "resealed: %d records (seq %d..%d) verified with the signing key and their MACs; the signed head now names record %d\n",
		rep.Records, rep.First, rep.Last, rep.Last)
	return nil
}

// writeVerifyReport says what a successful verification established.
func writeVerifyReport(w io.Writer, what string, rep *recorder.VerifyReport, keySource string) {
	if rep.Records == 0 {
		fmt.Fprintf(w, "ok: %s holds no records\n", what)
		return
	}
	if len(rep.Chains) > 0 {
		fmt.Fprintf(w, "ok: %d records in %s, in %s\n", rep.Records, what, plural(int64(len(rep.Chains)), "instance chain"))
		for _, c := range rep.Chains {
			fmt.Fprintf(w, "  instance %s wrote records %d..%d: every record matches its hash and links to the one before; %s signed by %s",
				warden.Printable(c.Instance), c.First, c.Last, plural(c.Checkpoints, "checkpoint"), recorder.FormatPublicKey(c.Key))
			if c.Partial && c.First > 1 {
				fmt.Fprintf(w, "; the export starts at record %d, vouched for by the checkpoints after it", c.First)
			}
			if c.Head != nil {
				fmt.Fprintf(w, "; reaches its signed head (record %d)", c.Head.Seq)
			}
			if c.MACs > 0 {
				fmt.Fprintf(w, "; %s checked", plural(c.MACs, "record MAC"))
			}
			if c.Unsigned > 0 {
				fmt.Fprintf(w, "; %d after the last checkpoint, not yet signed", c.Unsigned)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  checkpoints verified with %s\n", keySource)
		return
	}
	fmt.Fprintf(w, "ok: %d records (seq %d..%d) in %s\n", rep.Records, rep.First, rep.Last, what)
	fmt.Fprintln(w, "  every record matches its hash and links to the record before it")
	switch {
	case rep.Checkpoints == 0:
		fmt.Fprintln(w, "  no signed checkpoint yet: the chain is consistent, but nothing vouches for it")
	case rep.KeyFromChain:
		fmt.Fprintf(w, "  %s verify with key %s, taken from the store itself:\n", plural(rep.Checkpoints, "checkpoint"), recorder.FormatPublicKey(rep.Key))
		fmt.Fprintln(w, "  that shows the chain is consistent, not who signed it; pass --pubkey with a key kept elsewhere")
	default:
		fmt.Fprintf(w, "  %s signed by %s (%s)\n", plural(rep.Checkpoints, "checkpoint"), recorder.FormatPublicKey(rep.Key), keySource)
	}
	if rep.Partial {
		fmt.Fprintf(w, "  the export starts at record %d; its link to the records before is vouched for by the checkpoints after it\n", rep.First)
	}
	if rep.PrunedBefore > 0 {
		fmt.Fprintf(w, "  records before %d were pruned by retention; checkpoint %d anchors the chain\n", rep.PrunedBefore, rep.PrunedBefore)
	}
	if h := rep.Head; h != nil && h.MACVouched() {
		fmt.Fprintf(w, "  the store reaches its head (record %d, written %s): no newer record was removed; its signature names record %d, its MAC (checked with the key derived from the signing key) the rest\n",
			h.Seq, warden.Printable(h.At), h.Signed)
	} else if h != nil {
		fmt.Fprintf(w, "  the store reaches its signed head (record %d, written %s): no newer record was removed\n", h.Seq, warden.Printable(h.At))
	} else if rep.Records > 0 && !rep.Partial {
		fmt.Fprintln(w, "  no signed head (a store from before warden kept one): the removal of the newest records cannot be ruled out")
	}
	if rep.MACs > 0 {
		fmt.Fprintf(w, "  %s checked with the key derived from the signing key\n", plural(rep.MACs, "record MAC"))
	}
	if rep.AfterHead > 0 {
		fmt.Fprintf(w, "  %s after the signed head (seq %d..%d): NOT vouched for by the signature; only the head's MAC names them, which the public key cannot check\n",
			plural(rep.AfterHead, "record"), rep.Head.Seq+1, rep.Head.Seq+rep.AfterHead)
		fmt.Fprintln(w, "  (warden signs the head within a moment of writing, and when it stops; verify with the signing key, without --pubkey, to check them)")
	}
	if rep.Unsigned > 0 {
		fmt.Fprintf(w, "  %s after the last checkpoint (seq %d..%d): chained, not yet signed\n", plural(rep.Unsigned, "record"), rep.Last-rep.Unsigned+1, rep.Last)
		fmt.Fprintln(w, "  (warden signs within seconds of writing while it serves, and at shutdown)")
	}
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// readPublicKey reads --pubkey: a file holding the key, or the key itself.
func readPublicKey(arg string) (ed25519.PublicKey, error) {
	if _, err := os.Stat(arg); err == nil {
		data, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		return recorder.ParsePublicKey(string(data))
	}
	return recorder.ParsePublicKey(arg)
}

func (m *Main) sessionsExport(ctx context.Context, args []string) error {
	fs := m.flags("sessions export")
	config := fs.String("config", "warden.yaml", "config file")
	format := fs.String("format", "jsonl", "output format: jsonl (one JSON object per record)")
	since := fs.String("since", "", "start at the first record at or after: a duration ago (1h, 7d) or a time")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sessions export takes no arguments, got %q", fs.Arg(0))
	}
	if *format != "jsonl" {
		return usagef("--format %q is not supported (jsonl)", *format)
	}
	from, err := m.when(*since)
	if err != nil {
		return usagef("--since: %v", err)
	}
	store, _, err := m.openRecording(ctx, *config)
	if err != nil {
		return err
	}
	defer store.Close()
	_, err = store.Export(ctx, m.Stdout, from)
	return err
}

// when reads a point in time given as a duration ago ("1h", "7d"), an RFC
// 3339 time, or a date (UTC midnight). "" is the zero time.
func (m *Main) when(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := warden.ParseDuration(s); err == nil {
		return m.Clock().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (1h, 7d) nor a time (2025-03-01, 2025-03-01T12:00:00Z)", s)
}
