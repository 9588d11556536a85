package mask

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/warden-mcp/warden"
)

// Detector names, as written in masking.detectors.
const (
	CreditCard  = "credit_card"
	Email       = "email"
	USSSN       = "us_ssn"
	IBAN        = "iban"
	SecretToken = "secret_token"
)

// Config is the `masking` section: column rules per backend, the key of
// the hash strategy, and the value detectors:
// `detectors` names the detectors to run on every string of every result and
// recorded argument, and `allow` exempts exact values per detector, for
// example {email: [support@example.com]}.
type Config struct {
	// Columns are the column rules, per backend, by schema.table.column.
	Columns map[string]Columns `yaml:"columns"`
	// JSONPaths are the JSON path rules of http backends' response
	// bodies, per backend.
	JSONPaths map[string]JSONPaths `yaml:"json_paths"`
	// HashKey keys the hash strategy (at least 32 characters); when empty
	// the key is derived from the recording's signing key, which lives
	// outside the store.
	HashKey   string              `yaml:"hash_key"`
	Detectors []string            `yaml:"detectors"`
	Allow     map[string][]string `yaml:"allow"`
}

// Validate checks the detector names and allowlists. Errors are
// *warden.FieldError values (joined) with paths relative to `masking`.
func (c *Config) Validate() error {
	var errs []error
	enabled := map[string]bool{}
	for i, name := range c.Detectors {
		path := fmt.Sprintf("detectors[%d]", i)
		switch {
		case byName(name) == nil:
			errs = append(errs, warden.FieldErrorf(path, "unknown detector %q (%s)", name, strings.Join(known, ", ")))
		case enabled[name]:
			errs = append(errs, warden.FieldErrorf(path, "detector %q is listed twice", name))
		}
		enabled[name] = true
	}
	names := make([]string, 0, len(c.Allow))
	for name := range c.Allow {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := "allow." + name
		kind := byName(name)
		switch {
		case kind == nil:
			errs = append(errs, warden.FieldErrorf(path, "unknown detector %q (%s)", name, strings.Join(known, ", ")))
			continue
		case !enabled[name]:
			errs = append(errs, warden.FieldErrorf(path, "detector %q is not in detectors, so its allowlist would do nothing", name))
			continue
		}
		for j, v := range c.Allow[name] {
			vpath := fmt.Sprintf("%s[%d]", path, j)
			v = strings.TrimSpace(v)
			switch {
			case v == "":
				errs = append(errs, warden.FieldErrorf(vpath, "empty value"))
			case kind.wholeValue && !kind.detectsWhole(v):
				// An allowlist entry only ever matches a detected span
				// exactly; catch "4111 1111 1111 1111" vs
				// "4111111111111111" at start, not after a leak report.
				errs = append(errs, warden.FieldErrorf(vpath, "%q is not a value the %s detector detects, so allowing it would do nothing", v, name))
			}
		}
	}
	return errors.Join(errs...)
}

// known lists every detector, in the order the docs name them.
var known = []string{CreditCard, Email, USSSN, IBAN, SecretToken}

// Names returns the names of all detectors.
func Names() []string { return slices.Clone(known) }

// Detectors scrubs detected values out of strings. It is built once from a
// Config and is safe for concurrent use.
type Detectors struct {
	run     []detector // in the order of `order`, enabled only
	enabled fired
}

// detector is one compiled detector.
type detector struct {
	bit    fired
	marker string
	scans  []scanner
	allow  map[string]struct{}
}

// scanner returns the first detected span [start, end) in s with
// start >= lo, or start < 0. Scanners may look at bytes before lo for
// context, never include them in a span.
type scanner func(s string, lo int) (start, end int)

// kind describes one detector.
type kind struct {
	name   string
	bit    fired
	marker string
	// scans run one after the other, each over the previous one's
	// output.
	scans []scanner
	// wholeValue is true when a detected span is the whole sensitive value
	// (so an allowlist entry must be detectable on its own); false for
	// secret_token, whose password form needs context.
	wholeValue bool
}

// order is the order detectors run in. secret_token runs first so a
// connection string's password is masked as a secret, not as an email
// ("pw@db.example.com"); iban runs before credit_card so an IBAN's digit
// groups are not mistaken for a card.
var order = []string{SecretToken, IBAN, CreditCard, USSSN, Email}

// Bits of fired, one per kind.
const (
	bitSecret fired = 1 << iota
	bitIBAN
	bitCard
	bitSSN
	bitEmail
)

var kinds = [...]*kind{
	{name: SecretToken, bit: bitSecret, marker: markerFor(SecretToken), scans: []scanner{nextPEM, nextAWSSecret, nextSecret}},
	{name: IBAN, bit: bitIBAN, marker: markerFor(IBAN), scans: []scanner{nextIBAN}, wholeValue: true},
	{name: CreditCard, bit: bitCard, marker: markerFor(CreditCard), scans: []scanner{nextCard}, wholeValue: true},
	{name: USSSN, bit: bitSSN, marker: markerFor(USSSN), scans: []scanner{nextSSN}, wholeValue: true},
	{name: Email, bit: bitEmail, marker: markerFor(Email), scans: []scanner{nextEmail}, wholeValue: true},
}

func byName(name string) *kind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// markerFor is the text that replaces a value found by the named
// detector. Markers contain no digit, '@', '=', '/' or '-', so no detector
// finds anything in them or across their edges.
func markerFor(name string) string { return markerPrefix + name + "]" }

const markerPrefix = "[masked:"

// fallback replaces a whole string when scrubbing does not settle.
const fallback = "[masked]"

// detectsWhole reports whether the detector finds v itself as one span.
func (k *kind) detectsWhole(v string) bool {
	if want, _ := candidates(v); want&k.bit == 0 {
		return false
	}
	start, end := k.scans[0](v, 0)
	return start == 0 && end == len(v)
}

// NewDetectors validates c and compiles the detectors it names.
func NewDetectors(c Config) (*Detectors, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := &Detectors{}
	for _, name := range order {
		if !slices.Contains(c.Detectors, name) {
			continue
		}
		k := byName(name)
		det := detector{bit: k.bit, marker: k.marker, scans: k.scans}
		if vals := c.Allow[name]; len(vals) > 0 {
			det.allow = make(map[string]struct{}, len(vals))
			for _, v := range vals {
				det.allow[strings.TrimSpace(v)] = struct{}{}
			}
		}
		d.run = append(d.run, det)
		d.enabled |= det.bit
	}
	return d, nil
}

// fired is a set of detectors, one bit per kinds index.
type fired uint8

// names returns the detectors in f, sorted; nil when f is empty.
func (f fired) names() []string {
	if f == 0 {
		return nil
	}
	var out []string
	for _, k := range kinds {
		if f&k.bit != 0 {
			out = append(out, k.name)
		}
	}
	slices.Sort(out)
	return out
}

// maxPasses bounds how often Scrub re-runs the detectors on its own
// output. A pass normally masks everything and the next finds nothing;
// masking one value can give another the word boundary it lacked
// ("a@b.com4111111111111111": the card follows "com" until the address is
// masked), which takes one more pass. Fuzzing has found nothing that needs
// more than three, so the fallback is a guard, not an expected path.
const maxPasses = 4

// Scrub returns s with every detected span replaced by the detector's
// marker ("[masked:email]"), and the names of the detectors that fired,
// sorted and unique. Allowlisted spans are left as they are. Encoded
// layers are looked through (detect_layers.go): a base64 run whose content
// holds a finding is replaced whole, an embedded JSON document is scrubbed
// member by member, an embedded YAML document whose finding cannot be
// masked in place is replaced whole. The result is a fixed point:
// scrubbing it again changes nothing and fires nothing. When nothing is
// detected, s itself is returned without allocating.
func (d *Detectors) Scrub(s string) (string, []string) {
	b := newBudget(len(s))
	out, f, _ := d.scrubAt(s, 0, &b)
	if f == 0 {
		return out, nil
	}
	return out, f.names()
}

// scrubAt scrubs s, a value at layer depth, and also reports how many
// passes the text scan took (the last one found nothing); fuzzing watches
// it.
func (d *Detectors) scrubAt(s string, depth int, b *budget) (string, fired, int) {
	b.scanned += len(s)
	want, hints := candidates(s)
	if depth < maxLayers && d.enabled != 0 {
		if hints&hDoc != 0 && isJSONDoc(s) {
			out, f := d.scrubEmbeddedJSON(s, depth, b)
			return out, f, 1
		}
		if hints&hYAML != 0 && yamlish(s) {
			return d.scrubYAML(s, depth, b)
		}
	}
	return d.scrubText(s, depth, b, want, hints)
}

// scrubText scrubs s as text: the detectors, then base64 runs and escaped
// strings. want and hints are candidates(s).
func (d *Detectors) scrubText(s string, depth int, b *budget, want fired, hints hint) (string, fired, int) {
	var all fired
	for pass := 1; pass <= maxPasses; pass++ {
		if pass > 1 {
			want, hints = candidates(s)
		}
		b.scanned += len(s)
		want &= d.enabled
		if depth >= maxLayers || d.enabled == 0 {
			hints = 0
		}
		if want == 0 && hints&(hRun|hEsc) == 0 {
			return s, all, pass
		}
		out, f := d.pass(s, want)
		if hints&hRun != 0 {
			var g fired
			out, g = d.replaceRuns(out, depth, b)
			f |= g
		}
		if hints&hEsc != 0 {
			var g fired
			out, g = d.replaceEscaped(out, depth, b)
			f |= g
		}
		if depth < maxLayers && want&bitSecret != 0 {
			// (A JSON object has a ':', which makes secret_token a
			// candidate.)
			var g fired
			out, g = d.replaceCopiedObjects(out)
			f |= g
		}
		if f == 0 {
			return s, all, pass
		}
		all |= f
		s = out
	}
	// Masking kept finding new spans in its own output. Refuse to guess
	// which part is safe.
	return fallback, all, maxPasses + 1
}

// pass runs every detector once, each over the previous one's output.
// want are the candidates for s.
func (d *Detectors) pass(s string, want fired) (string, fired) {
	var all fired
	for i := range d.run {
		det := &d.run[i]
		// Candidates only shrink as spans become markers, so deciding on
		// the original string never skips a needed scan.
		if want&det.bit == 0 {
			continue
		}
		var hit bool
		s, hit = det.replace(s)
		if hit {
			all |= det.bit
		}
	}
	return s, all
}

// replace replaces every non-allowlisted span the detector finds in s.
func (det *detector) replace(s string) (string, bool) {
	hit := false
	for _, scan := range det.scans {
		var h bool
		s, h = det.replaceScan(s, scan)
		hit = hit || h
	}
	return s, hit
}

func (det *detector) replaceScan(s string, scan scanner) (string, bool) {
	var b strings.Builder
	copied, lo := 0, 0
	for lo < len(s) {
		start, end := scan(s, lo)
		if start < 0 {
			break
		}
		lo = end
		if _, ok := det.allow[s[start:end]]; ok {
			continue
		}
		if b.Cap() == 0 {
			b.Grow(len(s) + len(det.marker))
		}
		b.WriteString(s[copied:start])
		b.WriteString(det.marker)
		copied = end
	}
	if b.Cap() == 0 {
		return s, false
	}
	b.WriteString(s[copied:])
	return b.String(), true
}
