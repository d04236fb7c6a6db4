package db_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

// fillFleet inserts n devices in one transaction: names from a small set in
// mixed case (many ties), a third never heard from, some connected, some
// disabled, tags site=s<i%7>.
func fillFleet(t testing.TB, d *db.DB, n int, now time.Time) {
	t.Helper()
	ctx := context.Background()
	tx, err := d.Writer().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO devices (device_id, name, tags, primary_key, secondary_key, enabled, connected,
		created_at, updated_at, last_activity_at) VALUES (?, ?, ?, 'k', 'k', ?, ?, 0, 0, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"", "Alpha", "alpha", "beta", "Gamma", "delta"}
	r := rand.New(rand.NewPCG(1, 2))
	perm := r.Perm(n)
	for i := range n {
		var last any
		if i%3 != 0 {
			last = now.Add(-time.Duration(r.IntN(600)) * time.Second).UnixMilli()
		}
		enabled := i%11 != 0
		connected := i%5 == 0
		if _, err := st.ExecContext(ctx, fmt.Sprintf("dev-%05d", perm[i]), names[r.IntN(len(names))],
			fmt.Sprintf(`{"site":"s%d"}`, i%7), enabled, connected, last); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// wantOrder sorts devs as DeviceFilter f promises.
func wantOrder(devs []db.Device, f db.DeviceFilter, now time.Time) []string {
	rank := map[string]int{db.StatusOnline: 0, db.StatusOffline: 1, db.StatusDisabled: 2}
	s := slices.Clone(devs)
	slices.SortFunc(s, func(a, b db.Device) int {
		var c int
		switch f.Sort {
		case db.DeviceSortName:
			c = strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		case db.DeviceSortStatus:
			c = cmp.Compare(rank[a.Status(now)], rank[b.Status(now)])
		case db.DeviceSortLastActivity:
			c = a.LastActivity.Compare(b.LastActivity)
		}
		if c == 0 {
			c = strings.Compare(a.DeviceID, b.DeviceID)
		}
		if f.Desc {
			c = -c
		}
		return c
	})
	ids := make([]string, len(s))
	for i, d := range s {
		ids[i] = d.DeviceID
	}
	return ids
}

func ids(devs []db.Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.DeviceID
	}
	return out
}

// TestDeviceOrders: every order is total (ties by id, same direction), pages
// of Devices and the batches of EachDevice walk it without gap or overlap,
// with and without a filter.
func TestDeviceOrders(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d.Now = func() time.Time { return now }
	fillFleet(t, d, 1234, now)
	all, _, err := d.Devices(ctx, db.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"", "site=s3"} {
		for _, sort := range []string{db.DeviceSortID, db.DeviceSortName, db.DeviceSortStatus, db.DeviceSortLastActivity} {
			for _, desc := range []bool{false, true} {
				f := db.DeviceFilter{Query: q, Sort: sort, Desc: desc}
				t.Run(fmt.Sprintf("%s/%s/desc=%v", q, sort, desc), func(t *testing.T) {
					matching := all
					if q != "" {
						matching = slices.DeleteFunc(slices.Clone(all), func(d db.Device) bool { return d.Tags["site"] != "s3" })
					}
					want := wantOrder(matching, f, now)
					var paged []string
					for off := 0; ; off += 100 {
						page := f
						page.Offset, page.Limit = off, 100
						devs, total, err := d.Devices(ctx, page)
						if err != nil {
							t.Fatal(err)
						}
						if total != len(want) {
							t.Fatalf("total = %d, want %d", total, len(want))
						}
						if len(devs) == 0 {
							break
						}
						paged = append(paged, ids(devs)...)
					}
					if !slices.Equal(paged, want) {
						t.Errorf("pages of 100 differ from the order wanted (%d vs %d devices)", len(paged), len(want))
					}
					var walked []string
					if err := d.EachDevice(ctx, f, now, func(dev db.Device) error {
						walked = append(walked, dev.DeviceID)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(walked, want) {
						t.Errorf("EachDevice differs from the order wanted (%d vs %d devices)", len(walked), len(want))
					}
					// Offset and limit across a batch boundary.
					part := f
					part.Offset, part.Limit = 7, 600
					walked = walked[:0]
					if err := d.EachDevice(ctx, part, now, func(dev db.Device) error {
						walked = append(walked, dev.DeviceID)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					if end := min(len(want), 607); !slices.Equal(walked, want[min(7, end):end]) {
						t.Errorf("EachDevice offset 7 limit 600 gave %d devices, want %d", len(walked), end-min(7, end))
					}
				})
			}
		}
	}
	if _, _, err := d.Devices(ctx, db.DeviceFilter{Sort: "colour"}); err == nil || !strings.Contains(err.Error(), `unknown sort "colour"`) {
		t.Errorf("unknown sort: err = %v", err)
	}
}
