package db_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

func ids(devs []db.Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.DeviceID
	}
	return out
}

// TestDeviceOrders (SQLite; db/storetest has the same at a small scale for
// every store): at 1,234 devices put in by SQL, EachDevice crosses its
// batches. Every order is total (ties by id, same direction), pages
// of Devices and the batches of EachDevice walk it without gap or overlap,
// with and without a filter.
func TestDeviceOrders(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d.Now = func() time.Time { return now }
	dbtest.FillFleet(t, d, 1234, now)
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
					want := dbtest.FleetOrder(matching, f.Sort, f.Desc, now)
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
