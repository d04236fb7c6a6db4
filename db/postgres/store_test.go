package postgres_test

import (
	"context"
	"testing"
	"time"

	"fieldhub/db/postgres"
	"fieldhub/db/storetest"
	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"
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
}
