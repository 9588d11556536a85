package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/warden-mcp/warden/recorder"
)

// Audit verifies the store against its signed head (headFile, or
// the head beside the signing key) and, unless the key was given with
// --pubkey, the record MACs, whose key is derived from the signing key
// beside the store. A head is required once warden writes one (schema 4):
// without it, nothing shows the newest records are all there.
func (store *Store) Audit(ctx context.Context, o recorder.AuditOptions) (*recorder.VerifyReport, error) {
	key, givenKey, headFile := o.Key, o.KeyGiven, o.HeadFile
	opts := recorder.VerifyOptions{Key: key}
	var headMAC []byte
	if !givenKey {
		// With --pubkey the key file beside the store is not trusted,
		// so neither are MACs keyed from it.
		k, err := recorder.ReadKeyFile(store.KeyFile())
		switch {
		case err == nil:
			opts.MACKey, headMAC = recorder.RecordMACKey(k), recorder.HeadMACKey(k)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading the signing key: %w", err)
		}
	}
	if headFile == "" {
		headFile = store.HeadFile()
	}
	readHead := func() error {
		var h *recorder.Head
		var err error
		if headMAC != nil {
			// The head's MAC part, checked with the signing key, names
			// the last commit; with the public key only, its signature.
			h, err = recorder.ReadHeadMAC(headFile, key, headMAC)
		} else {
			h, err = recorder.ReadHead(headFile, key)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // only an empty store, or one from before heads, may have none: see below
		case err != nil:
			return err
		}
		opts.Head = h
		return nil
	}
	if err := readHead(); err != nil {
		return nil, err
	}
	rep, err := store.VerifyWith(ctx, opts)
	var ce *recorder.ChainError
	if errors.As(err, &ce) && ce.Tamper == recorder.Unvouched && opts.MACKey == nil && opts.Head != nil {
		// A serving warden may have committed records after the head
		// was read and before the store was: read the head again.
		if err := readHead(); err != nil {
			return nil, err
		}
		rep, err = store.VerifyWith(ctx, opts)
	}
	switch {
	case err != nil || opts.Head != nil || rep.Records == 0:
	case store.Version() >= 4:
		return rep, fmt.Errorf("there is no signed head at %s, so nothing shows that the newest records are all there: pass the head kept with the signing key with --head FILE", headFile)
	case rep.HeadEra:
		// The store's version says "from before heads"; its signed
		// checkpoints say otherwise.
		return rep, fmt.Errorf("its checkpoints were written by a warden that keeps a signed head, but there is none at %s (and its schema version, %d, was lowered): "+
			"the head was removed, so nothing shows that the newest records are all there", headFile, store.Version())
	}
	return rep, err
}

// KeySource says where the signing key is kept.
func (s *Store) KeySource() string { return "the key file " + s.KeyFile() }

var _ recorder.Store = (*Store)(nil)
