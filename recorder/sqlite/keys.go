package sqlite

import (
	"crypto/ed25519"

	"github.com/warden-mcp/warden/recorder"
)

// KeyPath is where the signing key of the store at dbPath is kept by
// default (Options.KeyDir moves it).
func KeyPath(dbPath string) string { return dbPath + ".key" }

// PublicKey returns the public half of the signing key kept beside the
// store, the key `warden sessions verify` trusts by default. It returns an
// error wrapping fs.ErrNotExist if the store has no key file.
func (s *Store) PublicKey() (ed25519.PublicKey, error) {
	key, err := recorder.ReadKeyFile(s.KeyFile())
	if err != nil {
		return nil, err
	}
	return key.Public().(ed25519.PublicKey), nil
}

// Path is the store's database file.
func (s *Store) Path() string { return s.path }
