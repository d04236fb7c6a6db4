package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fieldhub/db"
	dbpostgres "fieldhub/db/postgres"
	"fieldhub/telemetry"
	"fieldhub/telemetry/postgres"
)

// testNodesShareTheTables: two nodes writing one device's metric into one
// database number their chunks apart, each checkpoint keeps the other's
// chunks, a query sees both nodes' readings, and each node's recovery
// replays its own messages only.
func testNodesShareTheTables(t *testing.T, url string) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d, open := nodesOn(t, url, t0, "dev")
	appendAt := func(s *telemetry.Store, seconds ...int) {
		t.Helper()
		var recs []telemetry.Record
		for _, sec := range seconds {
			at := t0.Add(time.Duration(sec) * time.Second)
			recs = append(recs, telemetry.NewRecord(telemetry.Message{DeviceID: "dev", AuthMethod: "sas-primary",
				Body: fmt.Appendf(nil, `{"temp":%d}`, sec), EnqueuedAt: at}))
		}
		if _, err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	stA, a := open("a")
	stB, b := open("b")
	appendAt(a, 1, 2, 3)
	appendAt(b, 4, 5, 6)
	for _, s := range []*telemetry.Store{a, b} {
		if _, err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var chunks []string
	r, err := d.Pool().Query(ctx, `SELECT n.node || ':' || c.chunk_no FROM reading_chunks c JOIN telemetry_nodes n ON n.id = c.node ORDER BY c.chunk_no`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var c string
		if err := r.Scan(&c); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	if got, want := fmt.Sprint(chunks), "[a:1 b:4294967297]"; got != want {
		t.Errorf("stored chunks (node:number) = %s, want %s", got, want)
	}
	for name, s := range map[string]*telemetry.Store{"a": a, "b": b} {
		got := rawValues(t, s, "dev", "temp", t0, t0.Add(time.Minute))
		if fmt.Sprint(got) != "[1 2 3 4 5 6]" {
			t.Errorf("node %s reads %v, want both nodes' readings [1 2 3 4 5 6]", name, got)
		}
	}

	// Unfolded messages of b are b's alone to replay.
	appendAt(b, 7)
	for name, st := range map[string]*postgres.Storage{"a": stA, "b": stB} {
		watermark, _, err := st.Recovery(ctx)
		if err != nil {
			t.Fatal(err)
		}
		page, err := st.MessagesAfter(ctx, watermark, 100)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"a": 0, "b": 1}[name]
		if len(page) != want {
			t.Errorf("node %s would replay %d messages, want %d", name, len(page), want)
		}
	}
}

// testTextPostgreSQLCannotHold: a message whose system properties hold a
// NUL or invalid UTF-8 is stored (those bytes as U+FFFD), and the messages
// committed with it are too.
func testTextPostgreSQLCannotHold(t *testing.T, url string) {
	ctx := context.Background()
	d, err := dbpostgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev"}); err != nil {
		t.Fatal(err)
	}
	st, err := postgres.New(ctx, d.Pool(), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := telemetry.Open(ctx, st, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.Append(ctx, []telemetry.Record{
		telemetry.NewRecord(telemetry.Message{DeviceID: "dev", MessageID: "ok", AuthMethod: "sas-primary", Body: []byte("{}"), EnqueuedAt: now}),
		telemetry.NewRecord(telemetry.Message{DeviceID: "dev", MessageID: "a\x00b\xffc", ContentType: "\xfe", AuthMethod: "sas-primary",
			Properties: map[string]string{"k\x00": "v\xff"}, Body: []byte{0, 0xff}, EnqueuedAt: now}),
	}); err != nil {
		t.Fatalf("append: %v", err)
	}
	got, err := s.Messages(ctx, "dev", telemetry.MessageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d messages stored, want 2", len(got))
	}
	m := got[0]
	if m.MessageID != "a\uFFFDb\uFFFDc" || m.ContentType != "\uFFFD" || string(m.Body) != "\x00\xff" || m.Properties["k\x00"] != "v\uFFFD" {
		t.Errorf("stored message = id %q, content type %q, body %q, properties %q", m.MessageID, m.ContentType, m.Body, m.Properties)
	}
}

// nodesOn opens the database at url with the given devices registered,
// and returns it and what opens one node's telemetry store on it, its
// clock an hour after t0 (the tests of several instances on one database).
func nodesOn(tb testing.TB, url string, t0 time.Time, devices ...string) (*dbpostgres.Store, func(node string) (*postgres.Storage, *telemetry.Store)) {
	tb.Helper()
	ctx := context.Background()
	d, err := dbpostgres.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	for _, id := range devices {
		if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: id}); err != nil {
			tb.Fatal(err)
		}
	}
	return d, func(node string) (*postgres.Storage, *telemetry.Store) {
		tb.Helper()
		st, err := postgres.New(ctx, d.Pool(), node)
		if err != nil {
			tb.Fatal(err)
		}
		s, err := telemetry.Open(ctx, st, telemetry.Options{Now: func() time.Time { return t0.Add(time.Hour) }})
		if err != nil {
			tb.Fatal(err)
		}
		return st, s
	}
}

// rawValues reads a metric's raw readings in [from, to] through s.
func rawValues(t *testing.T, s *telemetry.Store, device, metric string, from, to time.Time) []float64 {
	t.Helper()
	var got []float64
	if err := s.RawReadings(context.Background(), device, metric, from, to, func(_ time.Time, v float64) error {
		got = append(got, v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}
