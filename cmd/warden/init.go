package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/tools/sql"
)

// initCmd proposes a starting warden.yaml from a database: it reads the
// schema and a sample of the values (tools/sql.SurveyDatabase), asks the
// mask package which columns look sensitive, and writes the config. The
// sampled values never leave the survey.
func (m *Main) initCmd(ctx context.Context, args []string) error {
	fs := m.flags("init")
	dsn := fs.String("dsn", "", "PostgreSQL URL to read the schema from; `${VAR}` reads it from the environment variable VAR")
	schemas := fs.String("schema", "", "comma-separated schemas to read (default: all but the system schemas)")
	sample := fs.Int("sample", sql.DefaultSample, "rows sampled per table (0: judge by column names only)")
	out := fs.String("out", "warden.yaml", "file to write (- for standard output)")
	force := fs.Bool("force", false, "overwrite an existing file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("init takes no arguments, got %q", fs.Arg(0))
	}
	if *dsn == "" {
		return usagef("init needs --dsn URL (or --dsn '${VAR}' to read it from the environment)")
	}
	if *sample < 0 || *sample > 100000 {
		return usagef("--sample must be between 0 and 100000, got %d", *sample)
	}
	var schemaList []string
	for _, s := range strings.Split(*schemas, ",") {
		if s = strings.TrimSpace(s); s != "" {
			schemaList = append(schemaList, s)
		}
	}
	// Refuse before connecting: nothing is read for a file that will not
	// be written.
	if *out != "-" && !*force {
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("%s exists; pass --force to overwrite it", *out)
		}
	}
	url, envVar := *dsn, ""
	if ref := envRefWhole.FindStringSubmatch(*dsn); ref != nil {
		envVar = ref[1]
		v, ok := m.Getenv(envVar)
		if !ok || v == "" {
			return fmt.Errorf("--dsn: environment variable %s is not set", envVar)
		}
		url = v
	}
	opts := sql.SurveyOptions{Schemas: schemaList, Sample: *sample}
	if *sample > 0 {
		d, err := mask.NewDetectors(mask.Config{Detectors: mask.Names()})
		if err != nil {
			return err
		}
		opts.Detectors = d
	}
	survey, err := sql.SurveyDatabase(ctx, url, opts)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	p := proposeConfig(survey, envVar, *sample)
	if len(p.tables) == 0 {
		where := "any schema"
		if len(schemaList) > 0 {
			where = "schema " + strings.Join(schemaList, ", ")
		}
		return fmt.Errorf("init: database %q has no tables or views in %s: nothing to grant", survey.Database, where)
	}
	text := p.render()
	if *out == "-" {
		_, err := fmt.Fprint(m.Stdout, text)
		return err
	}
	if err := writeNew(*out, []byte(text), *force); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "wrote %s: %d tables and views granted read-only, %d masking rules (%d from sampled values, %d from column names), %d notes\n",
		*out, len(p.tables), len(p.rules), p.fromValues, len(p.rules)-p.fromValues, len(p.notes))
	if envVar == "" || envVar != p.envVar {
		fmt.Fprintf(m.Stdout, "\nThe config reads the database URL from the environment; before `warden serve`:\n  export %s='<the URL you passed to --dsn>'\n", p.envVar)
	}
	fmt.Fprintf(m.Stdout, "\nReview it, then: warden check --config %s --connect\n", *out)
	return nil
}

var envRefWhole = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// writeNew writes data to path, refusing to replace an existing file
// unless force; with force the file is replaced whole (write, then
// rename), so a reader never sees half a config.
func writeNew(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; pass --force to overwrite it", path)
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".warden-init-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// proposal is the config warden init writes.
type proposal struct {
	database, backend, envVar string
	schemas                   []string
	sample                    int
	tables                    []string // granted, schema.name
	rules                     []proposedRule
	fromValues                int
	notes                     []proposedRule // findings that do not make a rule
	skipped                   []string       // "public.x (no SELECT privilege)"
	unnamable                 []string       // relations warden.yaml cannot name
	views                     int
}

type proposedRule struct {
	column string // schema.table.column
	mask.Suggestion
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

// proposeConfig turns a survey into a proposal: the tables to grant, a
// rule for each column that looks sensitive, notes for the rest.
func proposeConfig(s *sql.Survey, envVar string, sample int) *proposal {
	p := &proposal{database: s.Database, sample: sample}
	p.backend = strings.Trim(strings.ToLower(nonWord.ReplaceAllString(s.Database, "_")), "_")
	if p.backend == "" {
		p.backend = "db"
	}
	p.envVar = envVar
	if p.envVar == "" {
		p.envVar = "WARDEN_" + strings.ToUpper(p.backend) + "_DSN"
	}
	for i := range s.Tables {
		t := &s.Tables[i]
		if !slices.Contains(p.schemas, t.Schema) {
			p.schemas = append(p.schemas, t.Schema)
		}
		// Grants and rules name schema.table(.column), split at dots, and
		// grants read * ? [ as globs.
		if strings.ContainsAny(t.Schema+t.Name, ".*?[]\\") {
			p.unnamable = append(p.unnamable, t.Object())
			continue
		}
		p.tables = append(p.tables, t.Object())
		if !t.HoldsData() {
			p.views++
			continue
		}
		if t.Skipped != "" {
			p.skipped = append(p.skipped, fmt.Sprintf("%s (%s)", t.Object(), t.Skipped))
		}
		for _, c := range t.Columns {
			sg := mask.SuggestColumn(t.Name, c.Name, c.Textual, c.Census)
			if sg == nil {
				continue
			}
			if strings.Contains(c.Name, ".") {
				p.unnamable = append(p.unnamable, t.Object()+"."+c.Name)
				continue
			}
			r := proposedRule{column: t.Object() + "." + c.Name, Suggestion: *sg}
			if sg.Strategy == "" {
				p.notes = append(p.notes, r)
				continue
			}
			if sg.FromValues {
				p.fromValues++
			}
			p.rules = append(p.rules, r)
		}
	}
	return p
}

// plainYAML is a scalar YAML reads as the same string without quotes.
var plainYAML = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]*$`)

func yq(s string) string {
	if plainYAML.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

// render writes the proposal as a commented warden.yaml. The same survey
// always gives the same text.
func (p *proposal) render() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# warden.yaml proposed by `warden init` for the PostgreSQL database %s.\n", strconv.Quote(p.database))
	w("#\n# Review it before you rely on it: init judged column names and a sample of\n")
	if p.sample > 0 {
		w("# up to %d rows per table (read in a read-only transaction; no value was\n# printed, logged or written). A rule it did not propose is not a proof that\n# a column is harmless.\n", p.sample)
	} else {
		w("# nothing else (--sample 0: no value was read). A rule it did not propose is\n# not a proof that a column is harmless.\n")
	}
	w("#\n# The database URL is read from the environment, never from this file:\n")
	w("#   export %s='postgres://USER:PASSWORD@HOST:5432/%s'\n", p.envVar, p.database)
	w("# Then: warden check --connect && warden serve\n\n")

	w("store: sqlite:warden.db   # the recording, relative to this file\n\n")
	w("identity:\n")
	w("  # The caller on stdio: replace with yourself. Add identity.oidc for HTTP clients.\n")
	w("  local: {subject: you@example.com, groups: [analysts]}\n\n")

	w("backends:\n")
	w("  %s:\n", yq(p.backend))
	w("    kind: postgres\n")
	w("    dsn: \"${%s}\"\n", p.envVar)
	w("    statement_timeout: 5s\n")
	w("    max_rows: 1000\n")
	if len(p.schemas) != 1 || p.schemas[0] != "public" {
		// public first: where unqualified names usually resolve.
		schemas := slices.Clone(p.schemas)
		if i := slices.Index(schemas, "public"); i > 0 {
			schemas = append([]string{"public"}, slices.Delete(schemas, i, i+1)...)
		}
		quoted := make([]string, len(schemas))
		for i, s := range schemas {
			quoted[i] = yq(s)
		}
		w("    search_path: [%s]   # where unqualified names resolve\n", strings.Join(quoted, ", "))
	}
	w("\n")

	w("roles:\n")
	w("  reader:\n")
	w("    members: {groups: [analysts]}\n")
	w("    grants:\n")
	w("      # Read only. Grant writes deliberately, table by table; the approval\n")
	w("      # rule below then holds each one for a human.\n")
	w("      - backend: %s\n", yq(p.backend))
	w("        actions: [select]\n")
	w("        tables:\n")
	for _, t := range p.tables {
		w("          - %s\n", yq(t))
	}
	if len(p.unnamable) > 0 {
		w("        # Not granted: warden.yaml cannot name %s (a dot or glob character in the name).\n", strings.Join(p.unnamable, ", "))
	}
	w("\n")

	w("masking:\n")
	w("  columns:\n")
	if len(p.rules) == 0 {
		w("    %s: {}   # no column looked sensitive\n", yq(p.backend))
	} else {
		w("    %s:\n", yq(p.backend))
		width := 0
		for _, r := range p.rules {
			width = max(width, len(yq(r.column)+": "+r.Strategy))
		}
		for _, r := range p.rules {
			entry := yq(r.column) + ": " + r.Strategy
			w("      %-*s   # %s\n", width, entry, r.Reason)
		}
	}
	if len(p.notes) > 0 {
		w("  # Found in some values only, so no column rule: the detectors mask them\n  # where they appear.\n")
		for _, n := range p.notes {
			w("  #   %s: %s\n", n.column, strings.TrimSuffix(n.Reason, "; the detectors mask them where they appear"))
		}
	}
	if len(p.skipped) > 0 {
		w("  # Not sampled (judged by column names only):\n")
		for _, s := range p.skipped {
			w("  #   %s\n", s)
		}
	}
	if p.views > 0 {
		w("  # Views are masked through the tables they read: a rule on a table column\n  # applies to every view over it.\n")
	}
	w("  # The backstop: every string of every result, error and recorded argument.\n")
	w("  detectors: [%s]\n\n", strings.Join(mask.Names(), ", "))

	w("approvals:\n")
	w("  # Any write a grant allows waits until the calling user confirms it in\n")
	w("  # their MCP client.\n")
	w("  - {name: writes, backend: %s, when: [insert, update, delete, merge, truncate, ddl], approvers: user}\n", yq(p.backend))
	return b.String()
}
