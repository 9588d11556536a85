package sqlite

import (
	"context"
	"time"
)

// Kill stops s as a killed warden would stop right after its last commit:
// no final checkpoint, and the head's signature left where it was (its
// MAC part names the last commit).
func Kill(s *Store) error {
	err := s.w.do(context.Background(), func(context.Context) error {
		s.w.wrote = false
		err := s.w.headFile.Close()
		s.w.headFile = nil
		return err
	})
	if err != nil {
		return err
	}
	return s.Close()
}

// SetSignEvery sets how long the head's signature may lag its MAC part,
// until the test ends.
func SetSignEvery(t interface{ Cleanup(func()) }, d time.Duration) {
	old := signEvery
	signEvery = d
	t.Cleanup(func() { signEvery = old })
}
