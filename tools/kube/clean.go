package kube

import (
	"encoding/json"
	"fmt"

	"github.com/warden-mcp/warden"
)

// lastApplied is the annotation kubectl apply keeps the whole applied
// object in: for a Secret, its values in clear.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// maskedSecret replaces every value of a Secret's data and stringData.
var maskedSecret = json.RawMessage(`"[masked:secret]"`)

// clean returns an object as kube_get shows it: without
// metadata.managedFields and the last-applied annotation, with a Secret's
// data and stringData values masked (their keys kept), and with any
// appearance of warden's own credential replaced. Only the parts it
// changes are decoded. The value detectors then run over every string of
// the result in the pipeline (environment values, ConfigMap data).
func (b *Backend) clean(raw []byte, r *resource) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, warden.Wrap(warden.Unavailable, err, fmt.Sprintf("cluster %q answered with something that is not an object", b.Name))
	}
	if md, ok := obj["metadata"]; ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(md, &m); err != nil {
			return nil, warden.Wrap(warden.Unavailable, err, fmt.Sprintf("cluster %q answered with an object whose metadata is not an object", b.Name))
		}
		delete(m, "managedFields")
		if ann, ok := m["annotations"]; ok {
			var a map[string]json.RawMessage
			if err := json.Unmarshal(ann, &a); err == nil {
				delete(a, lastApplied)
				if len(a) == 0 {
					delete(m, "annotations")
				} else {
					m["annotations"], _ = json.Marshal(a)
				}
			} else {
				delete(m, "annotations") // not what the API serves: shown as nothing, not as is
			}
		}
		obj["metadata"], _ = json.Marshal(m)
	}
	if r.secret() {
		for _, field := range []string{"data", "stringData"} {
			v, ok := obj[field]
			if !ok {
				continue
			}
			var d map[string]json.RawMessage
			if err := json.Unmarshal(v, &d); err != nil {
				obj[field] = maskedSecret // never shown as is
				continue
			}
			for k := range d {
				d[k] = maskedSecret
			}
			obj[field], _ = json.Marshal(d)
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, warden.Wrap(warden.Internal, err, "an object could not be encoded")
	}
	return b.scrubCredentials(out), nil
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
