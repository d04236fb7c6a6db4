package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/postgres"
	"fieldhub/db/storetest"
	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"
	"fieldhub/storage"
)

// TestStore runs the store conformance suite on a real PostgreSQL, a fresh
// database per test.
func TestStore(t *testing.T) {
	testkit.Slow(t, "starts a PostgreSQL server")
	srv := pgtest.Start(t, pgtest.Options{ICU: true})
	urls := map[storetest.Store]string{}
	open := func(t *testing.T, url string, now func() time.Time) storetest.Store {
		s, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		s.Now = now
		urls[s] = url
		return s
	}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) storetest.Store {
			return open(t, srv.Database(t), now)
		},
		Reopen: func(t *testing.T, s storetest.Store, now func() time.Time) storetest.Store {
			url := urls[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, url, now)
		},
	})

	// PostgreSQL's text cannot hold a NUL or invalid UTF-8: such input is
	// the client's mistake (400), not the database failing (500).
	t.Run("TextPostgreSQLCannotHold", func(t *testing.T) {
		s := open(t, srv.Database(t), time.Now)
		for _, name := range []string{"a\x00b", "a\xffb"} {
			_, err := s.CreateDevice(context.Background(), db.NewDevice{DeviceID: "dev", Name: name})
			var inv *storage.InvalidError
			if !errors.As(err, &inv) {
				t.Errorf("device named %q: err = %v, want an InvalidError", name, err)
			}
		}
	})
}
