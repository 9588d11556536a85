package kube

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/warden-mcp/warden"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// What an agent sees of an object is decided by where each value sits,
// not by what it looks like. clean walks every object warden returns (and
// every object copied into one: an annotation holding an applied object,
// a manifest in a Helm release, a kubeconfig in a ConfigMap) and judges
// the fields that carry free-form values, by path:
//
//   - env values (containers, initContainers, ephemeralContainers, in pods
//     and in every pod template): masked when the variable's name says
//     secret (names.go), judged as words otherwise;
//   - command and args, of containers, probes and lifecycle hooks: judged
//     as one stream of words (words.go); HTTP probe headers by their name;
//   - annotations: one holding a serialized object (JSON, YAML, or either
//     base64- and gzip-encoded) is masked like the object it copies (a
//     copied Secret as a Secret); the rest by their key's name and as
//     words; kubectl's last-applied-configuration is dropped;
//   - ConfigMap data: structured files (JSON, YAML, kubeconfigs,
//     manifests) by their keys' names, others line by line; binaryData
//     decoded (base64, then gzip) and masked whole when anything in it is
//     found; a Helm release (base64, gzip, JSON) masked inside, its
//     manifests like the objects they hold;
//   - Secrets: every value of data and stringData;
//   - custom resources: every string and number, by its key's name and its
//     ancestors' (spec.database.credentials.*), and as words.
//
// In strict mode every free-form value above is masked unless its path is
// revealed (config.go). The value detectors then run over every string of
// the result (mask), and warden's own credential is masked in every form
// (credential.go).

// maxDecoded bounds what one object's encoded layers decode to, and
// maxDepth how deeply copies nest; beyond either the value is masked.
const (
	maxDecoded = 4 << 20
	maxDepth   = 6
)

// walker judges one object returned by one call.
type walker struct {
	j        *judge
	creds    *credentials
	scrubber warden.Scrubber
	resource string
	budget   int
	// strict is the backend's strict mode, off inside a copied document
	// (its annotation or data key was revealed to get there).
	strict bool
	// changed is set by every write that changes the object: an object
	// the walk left as it was can be encoded from its typed form.
	changed bool
}

// keep returns new, noting whether it differs from old.
func (w *walker) keep(old, new string) string {
	if old != new {
		w.changed = true
	}
	return new
}

// object masks obj, an object of group and kind, in place.
func (w *walker) object(obj map[string]any, group, kind string, depth int) {
	if md, ok := obj["metadata"].(map[string]any); ok {
		if _, ok := md["managedFields"]; ok {
			delete(md, "managedFields")
			w.changed = true
		}
		w.annotations(md, depth)
	}
	switch {
	case group == "" && kind == "Secret":
		w.changed = true
		for _, field := range []string{"data", "stringData"} {
			v, ok := obj[field]
			if !ok {
				continue
			}
			d, ok := v.(map[string]any)
			if !ok {
				obj[field] = secretMarker // never shown as is
				continue
			}
			for k := range d {
				d[k] = secretMarker
			}
		}
	case group == "" && kind == "ConfigMap":
		helm := false
		if md, ok := obj["metadata"].(map[string]any); ok {
			if l, ok := md["labels"].(map[string]any); ok && l["owner"] == "helm" {
				helm = true
			}
		}
		if d, ok := obj["data"].(map[string]any); ok {
			for k, v := range d {
				if s, ok := v.(string); ok {
					if helm && k == "release" {
						d[k] = w.keep(s, w.helmRelease(s, depth))
						continue
					}
					d[k] = w.keep(s, w.file(k, s, depth))
				}
			}
		}
		if d, ok := obj["binaryData"].(map[string]any); ok {
			for k, v := range d {
				if s, ok := v.(string); ok {
					d[k] = w.keep(s, w.binary(k, s, depth))
				}
			}
		}
	case groupClass(group) < 2:
		w.builtin(obj, "", "")
	default:
		w.changed = true // custom resources are never encoded from a typed form
		for k, v := range obj {
			if k != "metadata" && k != "apiVersion" && k != "kind" {
				obj[k] = w.custom(v, k, k, false, "", depth)
			}
		}
	}
}

// annotations judges the annotations of md, an object's or a pod
// template's metadata.
func (w *walker) annotations(md map[string]any, depth int) {
	raw, ok := md["annotations"]
	if !ok {
		return
	}
	ann, ok := raw.(map[string]any)
	if !ok {
		delete(md, "annotations") // not what the API serves: shown as nothing
		w.changed = true
		return
	}
	for k, v := range ann {
		s, ok := v.(string)
		if !ok || k == lastApplied {
			delete(ann, k)
			w.changed = true
			continue
		}
		ann[k] = w.keep(s, w.annotation(k, s, depth))
	}
	if len(ann) == 0 {
		delete(md, "annotations")
		w.changed = true
	}
}

// settings are the built-in fields that map names to free-form values,
// judged like environment variables: CSI volume attributes, flex volume
// options, storage class parameters.
var settings = set("volumeAttributes", "options", "parameters")

// builtin walks a built-in object's fields: only the fields known to carry
// free-form values are judged. container is the name of the container
// being walked, if any.
func (w *walker) builtin(v any, key, container string) any {
	switch t := v.(type) {
	case map[string]any:
		if n, ok := t["name"].(string); ok {
			if _, ok := t["image"]; ok {
				container = n
			}
		}
		for k, c := range t {
			switch {
			case k == "metadata" && key != "":
				// A pod template's metadata (the object's own was judged
				// by object).
				if md, ok := c.(map[string]any); ok {
					w.annotations(md, 0)
				}
				continue
			case settings[k]:
				if m, ok := c.(map[string]any); ok {
					for n, v := range m {
						if s, ok := v.(string); ok {
							m[n] = w.keep(s, w.envValue(n, s))
						}
					}
					continue
				}
			}
			switch k {
			case "env":
				w.nameValues(c, w.envValue)
			case "command", "args":
				t[k] = w.args(c, container)
			case "httpHeaders":
				w.nameValues(c, w.headerValue)
			case "message", "note":
				if s, ok := c.(string); ok {
					out, _, _ := w.j.words(s, pendNone)
					t[k] = w.keep(s, out)
				}
			default:
				t[k] = w.builtin(c, k, container)
			}
		}
	case []any:
		for i, c := range t {
			t[i] = w.builtin(c, key, container)
		}
	}
	return v
}

// nameValues judges each {name, value} pair of a list (a container's env,
// an HTTP probe's headers) by its name with judge.
func (w *walker) nameValues(v any, judge func(name, val string) string) {
	list, ok := v.([]any)
	if !ok {
		return
	}
	for _, it := range list {
		e, ok := it.(map[string]any)
		if !ok {
			continue
		}
		name, _ := e["name"].(string)
		val, ok := e["value"].(string)
		if !ok {
			continue
		}
		e["value"] = w.keep(val, judge(name, val))
	}
}

// envValue judges the value of an environment variable.
func (w *walker) envValue(name, val string) string {
	switch {
	case trivial(val):
		return val
	case w.j.secretName(name):
		return secretMarker
	case w.strict && !w.j.revealed("env", name):
		return strictMarker
	}
	out, _, _ := w.j.words(val, pendNone)
	return out
}

// args judges a command or args array as one stream of words.
func (w *walker) args(v any, container string) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	if w.strict && !w.j.revealed("args", container) {
		return w.strictArgs(list)
	}
	p := pendNone
	for i, it := range list {
		s, ok := it.(string)
		if !ok {
			continue
		}
		var out string
		out, _, p = w.j.words(s, p)
		list[i] = w.keep(s, out)
	}
	return list
}

// strictArgs keeps flag names and the values of revealed flags; every
// other word is masked.
func (w *walker) strictArgs(list []any) []any {
	reveal := false
	for i, it := range list {
		s, ok := it.(string)
		if !ok {
			continue
		}
		if reveal && !strings.HasPrefix(s, "-") {
			reveal = false
			continue
		}
		reveal = false
		if !strings.HasPrefix(s, "-") {
			list[i] = w.keep(s, strictMarker)
			continue
		}
		name, _, hasValue := strings.Cut(s, "=")
		switch {
		case !hasValue:
			reveal = w.j.revealed("flag", name) && !w.j.secretFlag(name)
		case w.j.revealed("flag", name) && !w.j.secretFlag(name):
		default:
			list[i] = w.keep(s, name+"="+strictMarker)
		}
	}
	return list
}

// headerValue judges the value of an HTTP probe header.
func (w *walker) headerValue(name, val string) string {
	switch {
	case trivial(val):
		return val
	case headerSecret[strings.Join(components(name), "")] || w.j.secretName(name):
		return secretMarker
	case w.strict && !w.j.revealed("header", name):
		return strictMarker
	}
	out, _, _ := w.j.words(val, pendNone)
	return out
}

// custom walks a custom resource's (or a copied document's) value at
// path under key: every string and number is judged. secret is set under
// a key that says secret; container as in builtin.
func (w *walker) custom(v any, key, path string, secret bool, container string, depth int) any {
	switch t := v.(type) {
	case map[string]any:
		if n, ok := t["name"].(string); ok {
			if _, ok := t["image"]; ok {
				container = n
			}
		}
		for k, c := range t {
			p := path + "." + k
			switch {
			case k == "env":
				if _, ok := c.([]any); ok && !secret {
					w.nameValues(c, w.envValue)
					continue
				}
			case k == "command" || k == "args":
				if _, ok := c.([]any); ok && !secret {
					t[k] = w.args(c, container)
					continue
				}
			case k == "httpHeaders":
				if !secret {
					w.nameValues(c, w.headerValue)
					continue
				}
			}
			t[k] = w.custom(c, k, p, secret || w.j.secretName(k), container, depth)
		}
		return t
	case []any:
		for i, c := range t {
			t[i] = w.custom(c, key, path, secret, container, depth)
		}
		return t
	case string:
		switch {
		case trivial(t):
			return t
		case secret:
			return secretMarker
		case w.strict && !w.j.revealed("field", w.resource+":"+path):
			return strictMarker
		}
		if doc, ok := w.structured(t, depth); ok {
			return w.rewrite(t, doc, depth)
		}
		out, _, _ := w.j.words(t, pendNone)
		return out
	case json.Number, float64, int, int64:
		if secret || (w.strict && !w.j.revealed("field", w.resource+":"+path)) {
			if secret {
				return secretMarker
			}
			return strictMarker
		}
	}
	return v
}

// annotation judges one annotation's value.
func (w *walker) annotation(k, v string, depth int) string {
	if doc, ok := w.structured(v, depth); ok {
		if w.strict && !w.j.revealed("annotation", k) {
			return strictMarker
		}
		return w.rewrite(v, doc, depth)
	}
	name := k
	if _, after, ok := strings.Cut(k, "/"); ok {
		name = after
	}
	switch {
	case trivial(v):
		return v
	case w.j.secretName(name):
		return secretMarker
	case w.strict && !w.j.revealed("annotation", k):
		return strictMarker
	}
	out, _, _ := w.j.words(v, pendNone)
	return out
}

// structured decodes a value that holds a serialized document: a JSON
// object or array, a YAML mapping, or either base64-encoded (and
// gzipped), within the walker's budget. ok is false for anything else;
// a value that decodes past the budget or depth comes back as a document
// that masks as a whole.
func (w *walker) structured(s string, depth int) (any, bool) {
	t := strings.TrimSpace(s)
	if len(t) < 2 {
		return nil, false
	}
	if depth >= maxDepth || len(t) > w.budget {
		if t[0] == '{' || t[0] == '[' || strings.Contains(t, ":\n") {
			return tooDeep{}, true
		}
		return nil, false
	}
	switch {
	case t[0] == '{' || t[0] == '[':
		var v any
		dec := json.NewDecoder(strings.NewReader(t))
		dec.UseNumber()
		if dec.Decode(&v) == nil && !dec.More() {
			w.budget -= len(t)
			return v, true
		}
	case strings.Contains(t, ":") && strings.Contains(t, "\n"):
		if docs, ok := yamlDocs(t); ok {
			w.budget -= len(t)
			if len(docs) == 1 {
				return docs[0], true
			}
			return yamlStream(docs), true
		}
	case len(t) >= 16 && !strings.ContainsAny(t, " \n\t:{"):
		if raw, ok := w.decode(t); ok && utf8.Valid(raw) {
			doc, ok := w.structured(string(raw), depth+1)
			if w.found(string(raw)) {
				return tooDeep{}, true // a finding masks the whole encoded value
			}
			if !ok {
				// Encoded text: masked whole when anything in it is
				// judged secret (password=X, --token X).
				if _, changed := w.j.lines(string(raw)); changed {
					return tooDeep{}, true
				}
			}
			return doc, ok
		}
	}
	return nil, false
}

// tooDeep is a document that nests or decodes past the bounds: masked
// whole.
type tooDeep struct{}

// yamlStream is a multi-document YAML value.
type yamlStream []any

// yamlDocs parses s as YAML documents that are mappings.
func yamlDocs(s string) ([]any, bool) {
	dec := yaml.NewDecoder(strings.NewReader(s))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false
		}
		if v == nil {
			continue
		}
		m, ok := normalize(v).(map[string]any)
		if !ok {
			return nil, false
		}
		docs = append(docs, m)
	}
	return docs, len(docs) > 0
}

// normalize turns YAML's decoded maps into map[string]any.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			t[k] = normalize(c)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, c := range t {
			ks, ok := k.(string)
			if !ok {
				b, _ := json.Marshal(k)
				ks = string(b)
			}
			m[ks] = normalize(c)
		}
		return m
	case []any:
		for i, c := range t {
			t[i] = normalize(c)
		}
	}
	return v
}

// decode undoes base64 (standard or URL alphabet) and then gzip, within
// the budget.
func (w *walker) decode(s string) ([]byte, bool) {
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, false
	}
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, false
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(w.budget)+1))
		if err != nil || len(out) > w.budget {
			w.budget = 0
			return nil, false
		}
		raw = out
	}
	w.budget -= len(raw)
	return raw, true
}

// document masks a decoded document in place and returns it, leniently:
// strict mode masked or revealed the value that holds it.
func (w *walker) document(doc any, depth int) any {
	saved := w.strict
	w.strict = false
	defer func() { w.strict = saved }()
	if m, ok := doc.(map[string]any); ok {
		if kind, ok := m["kind"].(string); ok {
			if av, ok := m["apiVersion"].(string); ok {
				group, _, _ := strings.Cut(av, "/")
				if !strings.Contains(av, "/") {
					group = ""
				}
				if kind == "List" || strings.HasSuffix(kind, "List") {
					if items, ok := m["items"].([]any); ok {
						for i, it := range items {
							items[i] = w.document(it, depth+1)
						}
						return m
					}
				}
				// A kind the cluster serves is masked as such; anything
				// else that looks like one (a kubeconfig's v1 Config) by
				// its keys' names.
				if groupClass(group) == 2 || builtinScheme().Recognizes(schema.GroupVersionKind{Group: group, Version: version(av), Kind: kind}) {
					w.object(m, group, kind, depth)
					return m
				}
			}
		}
	}
	return w.custom(doc, "", "", false, "", depth)
}

// version is the version of an apiVersion.
func version(apiVersion string) string {
	if _, v, ok := strings.Cut(apiVersion, "/"); ok {
		return v
	}
	return apiVersion
}

// file judges a ConfigMap data value under key.
func (w *walker) file(key, v string, depth int) string {
	switch {
	case trivial(v):
		return v
	case w.j.secretName(key):
		return secretMarker
	}
	var out string
	if doc, ok := w.structured(v, depth); ok {
		out = w.rewrite(v, doc, depth)
	} else {
		out, _ = w.j.lines(v)
	}
	if w.strict && !w.j.revealed("data", key) {
		return strictMarker
	}
	return out
}

// isEncoded reports whether v is an encoded value rather than a file.
func isEncoded(v string) bool {
	t := strings.TrimSpace(v)
	return t != "" && t[0] != '{' && t[0] != '[' && !strings.Contains(t, "\n")
}

// rewrite masks a decoded document and, when anything was masked, returns
// it re-encoded (JSON stays JSON, YAML is written as YAML, an encoded
// document is shown as its masked JSON); otherwise v as it was.
func (w *walker) rewrite(v string, doc any, depth int) string {
	before, _ := json.Marshal(docValue(doc))
	var masked string
	switch d := doc.(type) {
	case tooDeep:
		return secretMarker
	case yamlStream:
		parts := make([]string, len(d))
		for i, x := range d {
			parts[i] = toYAML(w.document(x, depth+1))
		}
		masked = strings.Join(parts, "---\n")
	default:
		m := w.document(doc, depth+1)
		if t := strings.TrimSpace(v); t[0] == '{' || t[0] == '[' || isEncoded(v) {
			b, _ := json.Marshal(m)
			masked = string(b)
		} else {
			masked = toYAML(m)
		}
	}
	after, _ := json.Marshal(docValue(doc))
	if bytes.Equal(before, after) {
		return v
	}
	return masked
}

func docValue(doc any) any {
	if s, ok := doc.(yamlStream); ok {
		return []any(s)
	}
	return doc
}

func toYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return secretMarker
	}
	return string(b)
}

// binary judges a ConfigMap binaryData value: decoded, and masked whole
// when its key says secret or anything inside is found.
func (w *walker) binary(key, v string, depth int) string {
	if w.j.secretName(key) {
		return secretMarker
	}
	if w.strict && !w.j.revealed("data", key) {
		return strictMarker
	}
	raw, ok := w.decode(v)
	if !ok {
		return secretMarker // not what the API serves, or past the budget
	}
	if !utf8.Valid(raw) {
		if w.creds.in(string(raw)) {
			return secretMarker
		}
		return v
	}
	if w.found(string(raw)) || w.file(key, string(raw), depth+1) != string(raw) {
		return secretMarker
	}
	return v
}

// found reports whether decoded text holds warden's credential or
// anything the value detectors find: the backup for layers the
// pipeline's detectors see only encoded.
func (w *walker) found(s string) bool {
	if w.creds.in(s) {
		return true
	}
	if w.scrubber != nil {
		if _, fired := w.scrubber.Scrub(s); len(fired) > 0 {
			return true
		}
	}
	return false
}

// helmRelease masks a Helm release kept by the ConfigMap driver
// (base64 of gzipped JSON): its values and config by their keys' names,
// its manifests like the objects they hold. A release that changed is
// shown as its masked JSON.
func (w *walker) helmRelease(v string, depth int) string {
	raw, ok := w.decode(v)
	if !ok {
		return secretMarker
	}
	var rel map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&rel) != nil {
		return secretMarker
	}
	manifest := func(m map[string]any) {
		if s, ok := m["manifest"].(string); ok {
			m["manifest"] = w.file("manifest", s, depth+1)
		}
	}
	manifest(rel)
	if hooks, ok := rel["hooks"].([]any); ok {
		for _, h := range hooks {
			if m, ok := h.(map[string]any); ok {
				manifest(m)
			}
		}
	}
	for _, k := range []string{"config", "chart"} {
		if c, ok := rel[k]; ok {
			rel[k] = w.document(c, depth+1)
		}
	}
	out, err := json.Marshal(rel)
	if err != nil {
		return secretMarker
	}
	return string(out)
}
