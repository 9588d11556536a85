package flows

import (
	"encoding/json"
	"strconv"
)

// walkJSON visits every scalar of a valid JSON document in document
// order, naming each by its path (body.lines[0].sku). Keys are visited
// too, with isKey set. It is a small recursive-descent reader rather than
// json.Decoder.Token, which costs microseconds per token: scanning must
// stay cheap. A document that is not valid JSON is not visited.
func walkJSON(doc []byte, prefix string, visit func(path, s string, isKey, isNumber bool)) {
	if !json.Valid(doc) {
		return
	}
	walkValidJSON(doc, prefix, visit)
}

// walkValidJSON is walkJSON for a document already known to be valid (a
// tool call's arguments, which the tool decoded strictly). On anything
// else it still ends, having visited some of it.
func walkValidJSON(doc []byte, prefix string, visit func(path, s string, isKey, isNumber bool)) {
	w := &jsonWalker{b: doc, visit: visit}
	w.value(prefix, 0)
}

type jsonWalker struct {
	b     []byte
	i     int
	visit func(path, s string, isKey, isNumber bool)
}

// maxNesting bounds recursion; deeper values are not visited.
const maxNesting = 64

func (w *jsonWalker) space() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\t' || w.b[w.i] == '\n' || w.b[w.i] == '\r') {
		w.i++
	}
}

func (w *jsonWalker) value(path string, depth int) {
	w.space()
	if w.i >= len(w.b) || depth > maxNesting {
		w.i = len(w.b)
		return
	}
	switch c := w.b[w.i]; {
	case c == '{':
		w.i++
		for {
			w.space()
			if w.i >= len(w.b) || w.b[w.i] == '}' {
				w.i++
				return
			}
			if w.b[w.i] == ',' {
				w.i++
				continue
			}
			k := w.str()
			kp := k
			if path != "" {
				kp = path + "." + k
			}
			w.visit(kp, k, true, false)
			w.space()
			w.i++ // ':'
			before := w.i
			w.value(kp, depth+1)
			if w.i == before {
				w.i++ // not JSON: make progress
			}
		}
	case c == '[':
		w.i++
		for n := 0; ; {
			w.space()
			if w.i >= len(w.b) || w.b[w.i] == ']' {
				w.i++
				return
			}
			if w.b[w.i] == ',' {
				w.i++
				continue
			}
			before := w.i
			w.value(path+"["+strconv.Itoa(n)+"]", depth+1)
			if w.i == before {
				w.i++ // not JSON: make progress
			}
			n++
		}
	case c == '"':
		w.visit(path, w.str(), false, false)
	case c == 't' || c == 'f' || c == 'n':
		for w.i < len(w.b) && w.b[w.i] >= 'a' && w.b[w.i] <= 'z' {
			w.i++
		}
	default:
		start := w.i
		for w.i < len(w.b) && (w.b[w.i] == '-' || w.b[w.i] == '+' || w.b[w.i] == '.' || w.b[w.i] == 'e' || w.b[w.i] == 'E' || w.b[w.i] >= '0' && w.b[w.i] <= '9') {
			w.i++
		}
		w.visit(path, string(w.b[start:w.i]), false, true)
	}
}

// str reads a string at w.i (the document is valid).
func (w *jsonWalker) str() string {
	start := w.i
	w.i++
	escaped := false
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case '\\':
			escaped = true
			w.i += 2
			continue
		case '"':
			w.i++
			raw := w.b[start:w.i]
			if !escaped {
				return string(raw[1 : len(raw)-1])
			}
			var s string
			_ = json.Unmarshal(raw, &s)
			return s
		}
		w.i++
	}
	return ""
}
