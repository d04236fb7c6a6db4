package live

import (
	"fmt"
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
		// "lost:X": another instance took lost instance X's connections back.
		{"its instance lost", []step{
			{"a", true, db.StatusOnline}, {"lost:a", false, db.StatusOffline},
		}},
		{"moved before its old instance was lost", []step{
			{"a", true, db.StatusOnline}, {"b", true, db.StatusOnline}, {"lost:a", false, db.StatusOnline},
		}},
		{"connected here when another instance is lost", []step{
			{"", true, db.StatusOnline}, {"lost:a", false, db.StatusOnline},
		}},
		{"found connected at start, its instance lost", []step{
			{"remember", true, db.StatusOnline}, {"lost:c", false, db.StatusOffline},
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
				case "lost:a", "lost:c":
					if err := h.FromPeer("b", PeerEvent{Type: PeerLost, Node: s.node[5:], Devices: []string{"dev1"}}); err != nil {
						t.Fatal(err)
					}
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

// A lost event must name its node and 1 to MaxLostDevices devices.
func TestPeerLostRefused(t *testing.T) {
	h := New(Options{})
	defer h.Close()
	many := make([]string, MaxLostDevices+1)
	for i := range many {
		many[i] = "d"
	}
	for name, ev := range map[string]PeerEvent{
		"no node":         {Type: PeerLost, Devices: []string{"d"}},
		"no devices":      {Type: PeerLost, Node: "a"},
		"too many":        {Type: PeerLost, Node: "a", Devices: many},
		"empty device id": {Type: PeerLost, Node: "a", Devices: []string{""}},
	} {
		if err := h.FromPeer("b", ev); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Lost sends a lost instance's devices to the other instances in events of
// at most MaxLostDevices.
func TestLostRelayedInParts(t *testing.T) {
	rec := &recordingRelay{}
	h := New(Options{Relay: rec})
	defer h.Close()
	ids := make([]string, MaxLostDevices+5)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%d", i)
	}
	h.Lost("a", ids)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var sizes []int
	for _, ev := range rec.events {
		if ev.Type == PeerLost && ev.Node == "a" {
			sizes = append(sizes, len(ev.Devices))
		}
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{MaxLostDevices, 5}) {
		t.Errorf("lost events of %v devices, want [%d 5]", sizes, MaxLostDevices)
	}
}

type recordingRelay struct {
	mu     sync.Mutex
	events []PeerEvent
}

func (r *recordingRelay) Relay(ev PeerEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recordingRelay) Watch(string, bool) {}
