package sqlite

import "os"

// RelaySupported tells the tests whether this platform has a relay.
const RelaySupported = relaySupported

// RelaySocket is where the relay of the store at dbPath listens.
func RelaySocket(dbPath string) string {
	fi, err := os.Stat(dbPath)
	if err != nil {
		return ""
	}
	id, _ := fileIdentity(fi)
	return relaySocket(id)
}

// Leads reports whether s is the relay of its store file.
func Leads(s *Store) bool { return s.relay != nil && s.relay.leading.Load() }

// RelayFrame encodes a record as a warden sends it to the relay (frameOf).
func RelayFrame(kind, session, call, at, body string) []byte {
	return frameOf(kind, session, call, at, body)
}
