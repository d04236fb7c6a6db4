package telemetrytest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"fieldhub/storage"
	"fieldhub/telemetry"
)

// A storage that indexes its log by device outside the commit
// (telemetry.MessageIndexer) lists messages from the index up to a
// watermark and from the log's tail above it. These tests move the
// watermark step by step through interleaved devices and check that every
// listing, page and cursor is the same wherever it stands; for a storage
// without such an index IndexMessages does nothing and they hold alike.

// devices of the index tests; their messages interleave in the log.
var indexDevices = []string{"dev1", "dev2", "dev3"}

// appendInterleaved appends n messages, device by device in turn, from
// message first on, and returns each device's ids in log order.
func appendInterleaved(t *testing.T, s *telemetry.Store, first, n int, ids map[string][]int64) {
	t.Helper()
	var recs []telemetry.Record
	for i := first; i < first+n; i++ {
		recs = append(recs, record(indexDevices[i%3], T0.Add(time.Duration(i)*time.Second), map[string]float64{"n": float64(i)}))
	}
	for i, id := range mustAppend(t, s, recs...) {
		dev := recs[i].Message.DeviceID
		ids[dev] = append(ids[dev], id)
	}
}

// checkListings compares every device's listing with want: whole, paged
// with each page size, and from a cursor at every id of the log (below, at
// and above the watermark, whichever device's).
func checkListings(t *testing.T, s *telemetry.Store, want map[string][]int64, when string) {
	t.Helper()
	var all []int64
	for _, ids := range want {
		all = append(all, ids...)
	}
	slices.Sort(all)
	for _, dev := range indexDevices {
		newest := slices.Clone(want[dev])
		slices.Reverse(newest)
		if got := listIDs(t, s, dev, telemetry.MessageFilter{Limit: telemetry.MaxMessagePage}); !slices.Equal(got, newest) {
			t.Fatalf("%s: %s lists %v, want %v", when, dev, got, newest)
		}
		for _, size := range []int{1, 2, 5, 7} {
			var seen []int64
			for f := (telemetry.MessageFilter{Limit: size}); ; {
				page := listIDs(t, s, dev, f)
				seen = append(seen, page...)
				if len(page) < size {
					break
				}
				f.Before = page[len(page)-1]
			}
			if !slices.Equal(seen, newest) {
				t.Fatalf("%s: %s in pages of %d lists %v, want %v", when, dev, size, seen, newest)
			}
		}
		for _, before := range append(all, all[len(all)-1]+1) {
			var below []int64
			for _, id := range newest {
				if id < before && len(below) < 3 {
					below = append(below, id)
				}
			}
			if got := listIDs(t, s, dev, telemetry.MessageFilter{Limit: 3, Before: before}); !slices.Equal(got, below) {
				t.Fatalf("%s: %s before %d lists %v, want %v", when, dev, before, got, below)
			}
		}
	}
}

func listIDs(t *testing.T, s *telemetry.Store, dev string, f telemetry.MessageFilter) []int64 {
	t.Helper()
	var ids []int64
	for _, m := range mustMessages(t, s, dev, f) {
		if m.DeviceID != dev {
			t.Fatalf("%s's listing holds a message of %q", dev, m.DeviceID)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

func mustIndex(t *testing.T, s *telemetry.Store, limit int) int {
	t.Helper()
	n, err := s.IndexMessages(context.Background(), limit)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testMessagesAcrossIndexSteps(t *testing.T, h *hub) {
	s := h.open(indexDevices...)
	want := map[string][]int64{}
	appendInterleaved(t, s, 0, 30, want)
	var inv *storage.InvalidError
	if _, err := s.IndexMessages(context.Background(), 0); err != nil && !errors.As(err, &inv) {
		t.Errorf("index step of 0 rows: err = %v, want nil or InvalidError", err)
	}
	checkListings(t, s, want, "nothing indexed")
	// Watermarks inside a device's run, at each device's message, at the
	// end of the log and past it (a step that finds fewer than its limit).
	for i, step := range []int{1, 1, 1, 4, 9, 14, 100, 100} {
		mustIndex(t, s, step)
		checkListings(t, s, want, "after step "+string(rune('A'+i)))
	}
	appendInterleaved(t, s, 30, 20, want)
	checkListings(t, s, want, "20 appended above the watermark")
	mustIndex(t, s, 8)
	checkListings(t, s, want, "8 of them indexed")
	// A crash between commits and the next step: the tail is scanned, and
	// the steps go on from where they got.
	s = h.crash()
	checkListings(t, s, want, "after a crash")
	appendInterleaved(t, s, 50, 10, want)
	for mustIndex(t, s, 7) == 7 {
		checkListings(t, s, want, "draining after the crash")
	}
	checkListings(t, s, want, "all indexed after the crash")
}

// Deleting a device deletes its messages on both sides of the watermark;
// a device created again, even under a reused internal id, lists only its
// own.
func testDeleteDeviceAcrossIndexSteps(t *testing.T, h *hub) {
	s := h.open(indexDevices...)
	want := map[string][]int64{}
	appendInterleaved(t, s, 0, 30, want)
	mustIndex(t, s, 13)
	for _, dev := range []string{"dev3", "dev1"} { // dev3 is the newest device row
		h.b.DeleteDevice(t, dev)
		if _, err := s.Messages(context.Background(), dev, telemetry.MessageFilter{}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("messages of deleted %s: err = %v, want ErrNotFound", dev, err)
		}
		h.b.CreateDevice(t, dev)
		want[dev] = nil
		if got := listIDs(t, s, dev, telemetry.MessageFilter{}); len(got) != 0 {
			t.Errorf("%s created again lists %v, want nothing", dev, got)
		}
	}
	if got := listIDs(t, s, "dev2", telemetry.MessageFilter{Limit: telemetry.MaxMessagePage}); len(got) != 10 {
		t.Errorf("dev2 lists %d messages after the others were deleted, want its 10", len(got))
	}
	appendInterleaved(t, s, 30, 9, want)
	mustIndex(t, s, 1000)
	checkListings(t, s, want, "after the deletes")
}

// Retention deletes old messages on both sides of the watermark, and a
// later step indexes only what is left.
func testPruneAcrossIndexSteps(t *testing.T, h *hub) {
	ctx := context.Background()
	h.now = T0.Add(100 * time.Second)
	h.retention = telemetry.Retention{Messages: 70 * time.Second, Raw: -1, Minutes: -1, Hours: -1}
	s := h.open(indexDevices...)
	want := map[string][]int64{}
	appendInterleaved(t, s, 0, 60, want) // message i enqueued at T0+i s
	mustCheckpoint(t, s)
	mustIndex(t, s, 17)
	for {
		_, more, err := s.Prune(ctx, h.now, 4)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	for dev, ids := range want { // messages 0..29 are past the 70 s
		want[dev] = ids[10:]
	}
	checkListings(t, s, want, "after pruning")
	mustIndex(t, s, 1000)
	checkListings(t, s, want, "after pruning and indexing")
}
