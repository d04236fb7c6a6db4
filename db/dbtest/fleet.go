package dbtest

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
)

// FillFleet inserts n devices into d in one transaction, as a large fleet
// looks: ids sensor-00000… in random order, names from a few in mixed case
// (many ties, some empty), a third never heard from, the others active in
// the 15 minutes before now, a fifth connected, one in eleven disabled, tag
// site=s<i%7>.
func FillFleet(t testing.TB, d *db.DB, n int, now time.Time) {
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
	names := []string{"", "Alpha", "alpha", "Beta", "gamma", "delta"}
	r := rand.New(rand.NewPCG(1, 2))
	perm := r.Perm(n)
	for i := range n {
		var last any
		if i%3 != 0 {
			last = now.Add(-time.Duration(r.IntN(900)) * time.Second).UnixMilli()
		}
		if _, err := st.ExecContext(ctx, fmt.Sprintf("sensor-%05d", perm[i]), names[r.IntN(len(names))],
			fmt.Sprintf(`{"site":"s%d"}`, i%7), i%11 != 0, i%5 == 0, last); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// FleetOrder is the ids of devs in the order db.DeviceFilter promises for
// sort and desc at time now, computed in Go: by the column (names in any
// ASCII letter case; statuses online, offline, disabled; never heard from as
// the oldest), then by id, both in the same direction.
func FleetOrder(devs []db.Device, sort string, desc bool, now time.Time) []string {
	rank := map[string]int{db.StatusOnline: 0, db.StatusOffline: 1, db.StatusDisabled: 2}
	s := slices.Clone(devs)
	slices.SortFunc(s, func(a, b db.Device) int {
		var c int
		switch sort {
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
		if desc {
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
