package kube

import (
	"bytes"
	"encoding/json"
	"k8s.io/apimachinery/pkg/api/meta"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"slices"

	"github.com/warden-mcp/warden"
)

// lastApplied is the annotation kubectl apply keeps the whole applied
// object in: dropped, it repeats the object.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// clean returns an object as kube_get shows it: without
// metadata.managedFields, with its free-form values judged by where they
// sit (structure.go; sc, when set, backs up the judgement of decoded
// layers) and with every form of warden's own credential replaced. The
// pipeline's value detectors then run over the whole result.
// r says what the object is: the resource asked for, not the object's
// own kind field.
func (b *Backend) clean(raw []byte, r *resource, sc warden.Scrubber) (json.RawMessage, error) {
	out, err := b.judged(raw, r, sc)
	if err != nil {
		return nil, err
	}
	return b.finish(out, sc)
}

// judgedKeys are the keys the walker acts on in a built-in object other
// than a Secret or a ConfigMap: one without any of them is returned as
// it is, undecoded (a string value that happens to contain one only costs
// a decode).
var judgedKeys = [][]byte{[]byte(`"managedFields"`), []byte(`"annotations"`), []byte(`"env"`), []byte(`"command"`), []byte(`"args"`),
	[]byte(`"httpHeaders"`), []byte(`"message"`), []byte(`"note"`), []byte(`"volumeAttributes"`), []byte(`"options"`), []byte(`"parameters"`)}

// judged is raw with its values judged by where they sit (structure.go).
func (b *Backend) judged(raw []byte, r *resource, sc warden.Scrubber) ([]byte, error) {
	if groupClass(r.gvr.Group) < 2 && !(r.gvr.Group == "" && (r.kind == "Secret" || r.kind == "ConfigMap")) &&
		!slices.ContainsFunc(judgedKeys, func(k []byte) bool { return bytes.Contains(raw, k) }) && json.Valid(raw) {
		return raw, nil
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, warden.Errorf(warden.Unavailable, "cluster %q answered with something that is not an object", b.Name)
	}
	return b.walk(obj, r, sc)
}

// cleanTyped is clean for a typed list's item: converted to generic maps
// for the walk, and encoded from its typed form when the walk changed
// nothing (most objects; encoding the typed form is several times
// cheaper).
func (b *Backend) cleanTyped(item k8sruntime.Object, r *resource, sc warden.Scrubber) (json.RawMessage, error) {
	acc, err := meta.Accessor(item)
	if err != nil {
		return nil, warden.Wrap(warden.Internal, err, "an object could not be read")
	}
	acc.SetManagedFields(nil)
	obj, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(item)
	if err != nil {
		return nil, warden.Wrap(warden.Internal, err, "an object could not be read")
	}
	w := b.walker(r, sc)
	w.object(obj, r.gvr.Group, r.kind, 0)
	var out []byte
	if w.changed {
		out, err = json.Marshal(obj)
	} else {
		out, err = json.Marshal(item)
	}
	if err != nil {
		return nil, warden.Wrap(warden.Internal, err, "an object could not be encoded")
	}
	return b.finish(out, sc)
}

// finish runs the value detectors (sc, when configured) over an encoded
// object and replaces warden's own credential.
func (b *Backend) finish(out []byte, _ warden.Scrubber) (json.RawMessage, error) {
	return b.scrubCredentials(out), nil
}

// returnedSize is how long obj will be once the pipeline's value
// detectors have run over it: what max_response_bytes counts. The
// detectors are run here only to measure, so the pipeline's own pass
// still finds (and records) what they mask.
func returnedSize(obj []byte, sc warden.Scrubber) (int, error) {
	if sc == nil {
		return len(obj), nil
	}
	out, _, err := sc.ScrubJSON(obj)
	if err != nil {
		return 0, warden.Wrap(warden.Internal, err, "an object could not be scanned for sensitive values")
	}
	return len(out), nil
}

func (b *Backend) walker(r *resource, sc warden.Scrubber) *walker {
	return &walker{j: b.judge, creds: b.creds, scrubber: sc, resource: r.name(), budget: maxDecoded, strict: b.judge.strict}
}

// walk judges obj in place and encodes it.
func (b *Backend) walk(obj map[string]any, r *resource, sc warden.Scrubber) ([]byte, error) {
	w := b.walker(r, sc)
	w.object(obj, r.gvr.Group, r.kind, 0)
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, warden.Wrap(warden.Internal, err, "an object could not be encoded")
	}
	return out, nil
}

// continueState is where the next page of a list starts: the page (one
// namespace of an expanded list, or the only one) and the API server's own
// continue token within it.
type continueState struct {
	Page  int    `json:"p"`
	Token string `json:"t,omitempty"`
}

// sealContinue binds the state to the list it continues (fingerprint)
// with an HMAC under the backend's key (see warden.Seal): a token cannot
// be edited, or used to continue another list (another namespace,
// resource or selector). Tokens do not outlive the process.
func sealContinue(key []byte, fingerprint string, st continueState) string {
	payload, _ := json.Marshal(st)
	return warden.Seal(key, continueDomain(fingerprint), payload)
}

func continueDomain(fingerprint string) string {
	return "warden/kube-continue/v1\x00" + fingerprint + "\x00"
}

func openContinue(key []byte, token, fingerprint string) (*continueState, error) {
	payload, ok := warden.Unseal(key, continueDomain(fingerprint), token)
	var st continueState
	if !ok || json.Unmarshal(payload, &st) != nil || st.Page < 0 {
		return nil, warden.Errorf(warden.Invalid, "the continue token is not one this list returned (it belongs to another list, or warden restarted); start again without it")
	}
	return &st, nil
}
