package db_test

import (
	"context"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/db/storetest"
)

// TestStore runs the store conformance suite on SQLite.
func TestStore(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) storetest.Store {
			d := dbtest.MustOpen(t)
			d.Now = now
			return d
		},
		Reopen: func(t *testing.T, s storetest.Store, now func() time.Time) storetest.Store {
			path := s.(*db.DB).Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			d, err := db.Open(context.Background(), path, db.Options{Synchronous: "NORMAL"})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			t.Cleanup(func() { d.Close() })
			d.Now = now
			return d
		},
	})
}
