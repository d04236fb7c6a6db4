package live

import (
	"sync"
	"testing"
	"time"

	"fieldhub/db"
)

// A device has one connection in a cluster, which moves between
// instances: a hub shows it online while any instance holds it, and the
// late close of a connection it left does not show it offline.
func TestPeerConnections(t *testing.T) {
	type step struct {
		node      string // "" here, else another instance; "remember" for RememberPeer
		connected bool
		want      string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"moves here, old instance closes late", []step{
			{"a", true, db.StatusOnline}, {"", true, db.StatusOnline}, {"a", false, db.StatusOnline}, {"", false, db.StatusOffline},
		}},
		{"moves between others", []step{
			{"a", true, db.StatusOnline}, {"b", true, db.StatusOnline}, {"a", false, db.StatusOnline}, {"b", false, db.StatusOffline},
		}},
		{"moves away from here", []step{
			{"", true, db.StatusOnline}, {"b", true, db.StatusOnline}, {"", false, db.StatusOnline}, {"b", false, db.StatusOffline},
		}},
		{"found connected at start, closed by its instance", []step{
			{"remember", true, db.StatusOnline}, {"c", false, db.StatusOffline},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			h := New(Options{Now: clock})
			defer h.Close()
			for i, s := range tc.steps {
				switch s.node {
				case "remember":
					h.RememberPeer("dev1")
				case "":
					h.SetConnected("dev1", s.connected)
				default:
					if err := h.FromPeer(s.node, PeerEvent{Type: PeerConnected, Device: "dev1", Connected: s.connected}); err != nil {
						t.Fatal(err)
					}
				}
				mu.Lock()
				now = now.Add(time.Hour) // a held connection counts, however quiet
				mu.Unlock()
				h.mu.Lock()
				got := h.statusOf(h.activity["dev1"], clock())
				h.mu.Unlock()
				if got != s.want {
					t.Fatalf("after step %d (%+v): %s, want %s", i, s, got, s.want)
				}
			}
		})
	}
}
