package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/query"
	"fieldhub/storage"
)

// RunFleetQuery tests fleet queries: the store's compiled conditions select
// exactly the devices whose db.DeviceDocument the query package's evaluator
// matches, page by page in device id order.
func RunFleetQuery(t *testing.T, b Backend) {
	cases(t, b,
		test{"MatchesEvaluator", testFleetQueryMatchesEvaluator},
		test{"Pages", testFleetQueryPages},
	)
}

// queryFleet registers a fleet with every field of the device document in
// several states: tags, desired and reported twins (or none), disabled,
// connected, disconnected and never heard from.
func queryFleet(t *testing.T, s Store, clk interface{ Advance(time.Duration) }) {
	t.Helper()
	ctx := context.Background()
	sites := []string{"berlin", "paris", "Berlin", "", "it's"}
	firmware := []string{"1.9.4", "2.0.1", "2.1.0", "2.2.3"}
	for i := range 40 {
		id := fmt.Sprintf("dev-%02d", i)
		tags := map[string]string{"owner": fmt.Sprintf("team-%d", i%3)}
		if i%7 != 0 {
			tags["site"] = sites[i%len(sites)]
		}
		if i%4 == 0 {
			tags["my key"] = "x"
		}
		nd := db.NewDevice{DeviceID: id, Name: fmt.Sprintf("Pump %d", i%6), Tags: tags}
		if _, err := s.CreateDevice(ctx, nd); err != nil {
			t.Fatal(err)
		}
		if i%5 != 1 {
			desired := map[string]any{"intervalSeconds": float64(10 * (i % 4)), "mode": []string{"eco", "boost"}[i%2]}
			if _, err := s.PatchTwin(ctx, id, db.TwinDesired, desired, 0, 1<<16); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 != 2 {
			reported := map[string]any{"firmware": firmware[i%4], "battery": float64(i) / 40,
				"network": map[string]any{"rssi": float64(-50 - i), "ok": i%2 == 0}}
			for range 1 + i%3 {
				if _, err := s.PatchTwin(ctx, id, db.TwinReported, reported, 0, 1<<16); err != nil {
					t.Fatal(err)
				}
			}
		}
		if i%9 == 3 {
			if _, err := s.UpdateDevice(ctx, id, db.DeviceUpdate{Enabled: ptr(false)}); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(1003 * time.Millisecond)
		switch i % 4 {
		case 1:
			if _, err := s.SetDeviceConnection(ctx, id, "node-a", true); err != nil {
				t.Fatal(err)
			}
		case 2:
			if _, err := s.SetDeviceConnection(ctx, id, "node-a", true); err != nil {
				t.Fatal(err)
			}
			clk.Advance(17 * time.Millisecond)
			if _, err := s.SetDeviceConnection(ctx, id, "node-a", false); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// fleetConditions use every field the document has, in every type.
var fleetConditions = []string{
	"",
	"tags.site = 'berlin'",
	"tags.site = 'berlin' AND properties.reported.firmware < '2.1'",
	"tags.site != 'berlin'",
	"NOT tags.site = 'berlin'",
	"tags.site IN ['paris', 'Berlin', 'it\\'s']",
	"tags.site NIN ['paris']",
	"tags['my key'] = 'x' OR name = 'Pump 3'",
	"IS_DEFINED(tags.site)",
	"NOT IS_DEFINED(tags.site)",
	"STARTSWITH(deviceId, 'dev-1')",
	"ENDS_WITH(name, '2') OR CONTAINS(tags.owner, '-1')",
	"status = 'disabled'",
	"status = 'enabled' AND connectionState = 'Connected'",
	"connectionState = 'Disconnected'",
	"online = true",
	"online",
	"NOT online",
	"authenticationType = 'sas'",
	"lastActivityTime > '2026-01-02T03:04:20.000Z'",
	"lastActivityTime <= '2026-01-02T03:04:30.5Z'",
	"IS_DEFINED(lastActivityTime)",
	"lastActivityTime = '2026-01-02T03:04:07.006Z'",
	"ENDS_WITH(lastActivityTime, '06Z')",
	"properties.desired.intervalSeconds >= 20",
	"properties.desired.intervalSeconds = 0",
	"properties.desired.mode = 'eco'",
	"properties.desired.$version = 1",
	"properties.desired.$version > 1",
	"properties.reported.$version >= 2",
	"properties.reported.$version = 1",
	"properties.reported.battery > 0.5",
	"properties.reported.network.rssi < -70",
	"properties.reported.network.ok = true",
	"properties.reported.network.ok",
	"IS_OBJECT(properties.reported.network)",
	"IS_DEFINED(properties.reported.firmware) AND NOT (properties.reported.firmware >= '2.1.0')",
	"properties.reported.firmware IN ['1.9.4', 2, null]",
	"tags.owner = 'team-1' AND (properties.reported.battery < 0.3 OR tags.site = 'paris')",
	"IS_NULL(tags.site) OR IS_STRING(tags.site)",
	"deviceId >= 'dev-20' AND deviceId < 'dev-30'",
}

func testFleetQueryMatchesEvaluator(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	queryFleet(t, s, clk)
	clk.Advance(10 * time.Second)
	now := clk.Now()
	all, err := s.QueryDevices(ctx, db.DeviceQuery{Limit: db.MaxQueryPage})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 40 {
		t.Fatalf("no condition selects %d devices, want 40", len(all))
	}
	for _, src := range fleetConditions {
		var cond query.Cond
		if src != "" {
			if cond, err = query.ParseCondition(src); err != nil {
				t.Fatalf("%s: %v", src, err)
			}
		}
		var want []string
		for _, qd := range all {
			if cond == nil || cond.Match(db.DeviceDocument(qd.Device, qd.Twin, now)) {
				want = append(want, qd.Device.DeviceID)
			}
		}
		got := queryIDs(t, s, cond, 7)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", src, got, want)
		}
	}
	// The rows carry the device and its twin as the store keeps them.
	for _, qd := range all {
		dev, err := s.Device(ctx, qd.Device.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		tw, err := s.Twin(ctx, qd.Device.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if dev.Name != qd.Device.Name || dev.Enabled != qd.Device.Enabled || dev.Connected != qd.Device.Connected ||
			!dev.LastActivity.Equal(qd.Device.LastActivity) || dev.PrimaryKey != qd.Device.PrimaryKey ||
			tw.DesiredVersion != qd.Twin.DesiredVersion || tw.ReportedVersion != qd.Twin.ReportedVersion ||
			fmt.Sprint(tw.Reported) != fmt.Sprint(qd.Twin.Reported) || fmt.Sprint(tw.Desired) != fmt.Sprint(qd.Twin.Desired) {
			t.Errorf("queried %s = %+v, want device %+v twin %+v", dev.DeviceID, qd, dev, tw)
		}
	}
}

// queryIDs reads every page of a query, pageSize devices at a time.
func queryIDs(t *testing.T, s Store, cond query.Cond, pageSize int) []string {
	t.Helper()
	var ids []string
	after := ""
	for {
		page, err := s.QueryDevices(context.Background(), db.DeviceQuery{Where: cond, After: after, Limit: pageSize})
		if err != nil {
			t.Fatal(err)
		}
		for _, qd := range page {
			ids = append(ids, qd.Device.DeviceID)
		}
		if len(page) < pageSize {
			return ids
		}
		after = page[len(page)-1].Device.DeviceID
	}
}

func testFleetQueryPages(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	for i := range 5 {
		device(t, s, fmt.Sprintf("p-%d", i))
	}
	page, err := s.QueryDevices(ctx, db.DeviceQuery{After: "p-1", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Device.DeviceID != "p-2" || page[1].Device.DeviceID != "p-3" {
		t.Errorf("page after p-1 = %v, want p-2, p-3", page)
	}
	var inv *storage.InvalidError
	for _, limit := range []int{0, -1, db.MaxQueryPage + 1} {
		if _, err := s.QueryDevices(ctx, db.DeviceQuery{Limit: limit}); !errors.As(err, &inv) {
			t.Errorf("limit %d: err = %v, want InvalidError", limit, err)
		}
	}
	// A deadline stops the scan.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.QueryDevices(cctx, db.DeviceQuery{Limit: 10}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled query: err = %v, want context.Canceled", err)
	}
}
