package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// recorder is a publisher that keeps what it was given.
type recorder struct {
	mu    sync.Mutex
	got   []telemetry.Record
	calls int
}

// count is how many messages were published so far.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) Committed(batch []telemetry.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, batch...)
	r.calls++
}

// gatedStore holds every Append until the gate opens, to fill the queue.
type gatedStore struct {
	*telemetry.Store
	gate    chan struct{}
	entered chan struct{} // gets a value each time the writer reaches the store
}

func newGate(s *telemetry.Store) gatedStore {
	return gatedStore{Store: s, gate: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (g gatedStore) Append(ctx context.Context, recs []telemetry.Record) ([]int64, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.Store.Append(ctx, recs)
}

// openDB opens the database at path with devices, and its telemetry store.
func openDB(t *testing.T, path string, devices ...string) (*db.DB, *telemetry.Store) {
	t.Helper()
	d, err := db.Open(context.Background(), path, db.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, id := range devices {
		if _, err := d.CreateDevice(context.Background(), db.NewDevice{DeviceID: id}); err != nil && !errors.Is(err, storage.ErrConflict) {
			t.Fatal(err)
		}
	}
	return d, dbtest.Telemetry(t, d)
}

func newPipeline(t *testing.T, store ingest.Store, pub ingest.Publisher, opts ingest.Options) *ingest.Pipeline {
	t.Helper()
	p := ingest.New(store, pub, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

func msg(device string, i int) telemetry.Message {
	return telemetry.Message{
		DeviceID: device, AuthMethod: "sas-primary", MessageID: fmt.Sprintf("%s-%d", device, i),
		Body: fmt.Appendf(nil, `{"n": %d, "nested": {"ok": true}, "label": "x"}`, i),
	}
}

func TestPipelineConcurrentSubmit(t *testing.T) {
	ctx := context.Background()
	devices := []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"}
	d, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), devices...)
	pub := &recorder{}
	p := newPipeline(t, tel, pub, ingest.Options{CheckpointMessages: 300})
	const perDevice = 150
	var wg sync.WaitGroup
	errs := make(chan error, len(devices))
	for _, dev := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perDevice; i += 3 {
				// Singles and small batches, as HTTP devices send them.
				if err := p.Submit(ctx, msg(dev, i)); err != nil {
					errs <- err
					return
				}
				if err := p.Submit(ctx, msg(dev, i+1), msg(dev, i+2)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	total := len(devices) * perDevice
	if st := p.Stats(); st.Committed != int64(total) || st.Queued != 0 {
		t.Errorf("stats = %+v, want %d committed and nothing queued", st, total)
	}
	pub.mu.Lock()
	seen := map[int64]bool{}
	for _, c := range pub.got {
		if c.Message.ID == 0 || seen[c.Message.ID] {
			t.Fatalf("id %d published twice or not set", c.Message.ID)
		}
		seen[c.Message.ID] = true
		if len(c.Readings) != 2 || c.Readings[0].Metric != "n" || c.Readings[1].Metric != "nested.ok" || c.Readings[1].Value != 1 {
			t.Fatalf("published readings = %+v, want n and nested.ok=1", c.Readings)
		}
		if !c.Time.Equal(c.Message.EnqueuedAt) {
			t.Fatalf("published %+v: reading time should be the enqueued time", c)
		}
	}
	if len(pub.got) != total {
		t.Errorf("published %d messages, want %d", len(pub.got), total)
	}
	pub.mu.Unlock()

	for _, dev := range devices {
		msgs, err := tel.Messages(ctx, dev, telemetry.MessageFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != perDevice {
			t.Errorf("%s: %d messages stored, want %d", dev, len(msgs), perDevice)
		}
		dv, err := d.Device(ctx, dev)
		if err != nil || dv.LastActivity.IsZero() {
			t.Errorf("%s: last activity not recorded (%v)", dev, err)
		}
		n := 0
		err = tel.RawReadings(ctx, dev, "n", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), func(time.Time, float64) error { n++; return nil })
		if err != nil || n != perDevice {
			t.Errorf("%s: %d readings of n (%v), want %d", dev, n, err, perDevice)
		}
	}
}

func TestPipelineOverloaded(t *testing.T) {
	ctx := context.Background()
	_, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	g := newGate(tel)
	p := newPipeline(t, g, nil, ingest.Options{QueueMessages: 4, MaxDelay: -1})

	// The writer takes the first message and blocks in the store; three more
	// fill the queue (the bound counts messages until they commit).
	results := make(chan error, 4)
	go func() { results <- p.Submit(ctx, msg("dev1", 0)) }()
	<-g.entered
	go func() { results <- p.Submit(ctx, msg("dev1", 1), msg("dev1", 2), msg("dev1", 3)) }()
	testkit.WaitFor(t, "4 messages queued", func() bool { return p.Stats().Queued == 4 })

	if err := p.Submit(ctx, msg("dev1", 4)); !errors.Is(err, ingest.ErrOverloaded) {
		t.Fatalf("submit to a full queue: err = %v, want ErrOverloaded", err)
	}
	if st := p.Stats(); st.Overloaded != 1 {
		t.Errorf("overloaded = %d, want 1", st.Overloaded)
	}
	close(g.gate)
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("queued submit failed: %v", err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(ctx, msg("dev1", 5)); !errors.Is(err, ingest.ErrClosed) {
		t.Errorf("submit after close: err = %v, want ErrClosed", err)
	}
	stored, err := tel.Messages(ctx, "dev1", telemetry.MessageFilter{})
	if err != nil || len(stored) != 4 {
		t.Errorf("stored %d messages (%v), want 4", len(stored), err)
	}
}

// TestPipelineEnqueueWaitsForRoom: where Submit refuses a full queue,
// Enqueue holds its caller until the writer makes room, returns before the
// commit, and reports the commit on its channel.
func TestPipelineEnqueueWaitsForRoom(t *testing.T) {
	ctx := context.Background()
	_, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	g := newGate(tel)
	p := newPipeline(t, g, nil, ingest.Options{QueueMessages: 2, MaxDelay: -1})

	first, err := p.Enqueue(ctx, 0, msg("dev1", 0))
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered // the writer holds message 0 in the store
	second, err := p.Enqueue(ctx, 0, msg("dev1", 1))
	if err != nil {
		t.Fatal(err)
	}
	enqueued := make(chan (<-chan error))
	go func() {
		done, err := p.Enqueue(ctx, 0, msg("dev1", 2))
		if err != nil {
			t.Errorf("enqueue into a full queue: %v", err)
		}
		enqueued <- done
	}()
	select {
	case <-enqueued:
		t.Fatal("Enqueue returned while the queue was full")
	case <-time.After(50 * time.Millisecond):
	}
	// A caller that gives up gets ctx's error, and nothing of its is stored.
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Enqueue(short, 0, msg("dev1", 99)); !errors.Is(err, context.Canceled) {
		t.Errorf("enqueue with a cancelled context: err = %v, want context.Canceled", err)
	}
	// One whose wait runs out gets DeadlineExceeded, and nothing stored.
	if _, err := p.Enqueue(ctx, time.Millisecond, msg("dev1", 98)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("enqueue with a 1 ms wait into a full queue: err = %v, want context.DeadlineExceeded", err)
	}
	if st := p.Stats(); st.Overloaded != 0 {
		t.Errorf("overloaded = %d, want 0: Enqueue waits rather than refusing", st.Overloaded)
	}
	close(g.gate)
	third := <-enqueued
	for i, done := range []<-chan error{first, second, third} {
		if err := <-done; err != nil {
			t.Errorf("message %d: commit result %v", i, err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(ctx, 0, msg("dev1", 3)); !errors.Is(err, ingest.ErrClosed) {
		t.Errorf("enqueue after close: err = %v, want ErrClosed", err)
	}
	stored, err := tel.Messages(ctx, "dev1", telemetry.MessageFilter{})
	if err != nil || len(stored) != 3 {
		t.Errorf("stored %d messages (%v), want 3", len(stored), err)
	}
}

func TestPipelineCloseDrainsQueue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.db")
	d, tel := openDB(t, path, "dev1")
	g := newGate(tel)
	p := ingest.New(g, nil, ingest.Options{})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Submit(ctx, msg("dev1", i)); err != nil {
				t.Errorf("submit %d: %v", i, err)
			}
		}()
	}
	testkit.WaitFor(t, "50 messages queued", func() bool { return p.Stats().Queued == 50 }) // one in the store, 49 queued
	closed := make(chan error)
	go func() { closed <- p.Close(ctx) }()
	close(g.gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	d.Close()

	// Everything was committed and checkpointed: the store reopened has
	// every reading.
	_, tel2 := openDB(t, path)
	n := 0
	err := tel2.RawReadings(ctx, "dev1", "n", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), func(time.Time, float64) error { n++; return nil })
	if err != nil || n != 50 {
		t.Errorf("after restart %d readings (%v), want 50", n, err)
	}
}

func TestPipelineDeviceDeleted(t *testing.T) {
	ctx := context.Background()
	d, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1", "dev2")
	p := newPipeline(t, tel, nil, ingest.Options{})
	if err := d.DeleteDevice(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(ctx, msg("dev1", 1)); !errors.Is(err, ingest.ErrDeviceGone) {
		t.Errorf("submit for a deleted device: err = %v, want ErrDeviceGone", err)
	}
	if err := p.Submit(ctx, msg("dev2", 1)); err != nil {
		t.Errorf("submit for dev2: %v", err)
	}
}

func TestPipelineReadingTime(t *testing.T) {
	ctx := context.Background()
	_, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	pub := &recorder{}
	p := newPipeline(t, tel, pub, ingest.Options{Now: func() time.Time { return now }})
	tests := []struct {
		name string
		body string
		want time.Time
		n    int
	}{
		{"device ts in epoch ms", `{"ts": 1777629000000, "v": 1}`, time.UnixMilli(1777629000000).UTC(), 1},
		{"device timestamp RFC 3339", `{"timestamp": "2026-05-01T09:00:00Z", "v": 1}`, time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC), 1},
		{"ts in the future falls back", `{"ts": "2027-01-01T00:00:00Z", "v": 1}`, now, 1},
		{"ts before 2000 falls back", `{"ts": 5, "v": 1}`, now, 1},
		{"malformed ts: logged, no readings", `{"ts": "yesterday", "v": 1}`, now, 0},
		{"not JSON", `hello`, now, 0},
		{"NaN and huge skipped", `{"a": NaN, "b": 1e999, "c": 2}`, now, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub.mu.Lock()
			pub.got = nil
			pub.mu.Unlock()
			if err := p.Submit(ctx, telemetry.Message{DeviceID: "dev1", Body: []byte(tt.body)}); err != nil {
				t.Fatal(err)
			}
			// Waiters wake before the publisher is called.
			testkit.WaitFor(t, "a batch published", func() bool { return pub.count() > 0 })
			pub.mu.Lock()
			defer pub.mu.Unlock()
			if len(pub.got) != 1 || len(pub.got[0].Readings) != tt.n {
				t.Fatalf("published %+v, want one message with %d readings", pub.got, tt.n)
			}
			if got := pub.got[0].Time; !got.Equal(tt.want) {
				t.Errorf("reading time = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPipelineDeletesOldTelemetry(t *testing.T) {
	ctx := context.Background()
	_, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	var now atomic.Int64
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	now.Store(start.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	p := newPipeline(t, tel, nil, ingest.Options{Now: clock})

	old := msg("dev1", 1)
	old.EnqueuedAt = start.Add(-8 * 24 * time.Hour)
	if err := p.Submit(ctx, old, msg("dev1", 2)); err != nil {
		t.Fatal(err)
	}
	// Past the first prune (a minute after start) and a checkpoint: the writer's
	// once-a-second tick does both.
	now.Store(start.Add(2 * time.Minute).UnixNano())
	testkit.WaitFor(t, "the 8-day-old message pruned", func() bool {
		msgs, err := tel.Messages(ctx, "dev1", telemetry.MessageFilter{})
		return err == nil && len(msgs) == 1 && msgs[0].MessageID == "dev1-2"
	})
}

// A checkpoint over more series than one step writes finishes in steps
// between batches, and on its own once messages stop coming.
func TestPipelineCheckpointsInSteps(t *testing.T) {
	ctx := context.Background()
	d, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	p := newPipeline(t, tel, nil, ingest.Options{CheckpointMessages: 5, CheckpointStepRows: 4})
	body := func(i int) []byte {
		b := []byte{'{'}
		for m := range 40 {
			if m > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `"m%02d": %d`, m, i)
		}
		return append(b, '}')
	}
	for i := range 5 { // the fifth starts a checkpoint of 40 series, 2 rows each
		if err := p.Submit(ctx, telemetry.Message{DeviceID: "dev1", AuthMethod: "sas-primary", Body: body(i)}); err != nil {
			t.Fatal(err)
		}
	}
	newest, err := tel.Messages(ctx, "dev1", telemetry.MessageFilter{Limit: 1})
	if err != nil || len(newest) != 1 {
		t.Fatalf("newest message: %v, %v", newest, err)
	}
	watermark := func() (folded int64, behind int) {
		w := d.Writer()
		if err := w.QueryRowContext(ctx, `SELECT folded_message_id FROM telemetry_state`).Scan(&folded); err != nil {
			t.Fatal(err)
		}
		if err := w.QueryRowContext(ctx, `SELECT COUNT(*) FROM metrics WHERE through_msg < ?`, folded).Scan(&behind); err != nil {
			t.Fatal(err)
		}
		return folded, behind
	}
	testkit.WaitFor(t, "the watermark at the newest message", func() bool { folded, _ := watermark(); return folded == newest[0].ID })
	if _, behind := watermark(); behind != 0 {
		t.Errorf("%d metrics stored through less than the watermark, want 0", behind)
	}
	// 40 series of 2 rows or more, 4 rows a step: many steps, each timed as
	// the writer's stall.
	if steps := p.Stats().StepSeconds[ingest.StepCheckpoint]; steps.Count < 10 || steps.Sum <= 0 {
		t.Errorf("checkpoint steps timed: %+v, want at least 10", steps)
	}
}

// The writer indexes the message log by device in bounded steps: a backlog
// of more than one step (here written before the pipeline started) drains
// over several, and messages committed later are indexed by the next step.
func TestPipelineIndexesMessagesInSteps(t *testing.T) {
	ctx := context.Background()
	d, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1", "dev2")
	appendBacklog(t, tel, 50)
	newest := func() (id int64) {
		if err := d.Writer().QueryRowContext(ctx, `SELECT MAX(id) FROM messages`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	indexed := func() (through int64, entries int) {
		if err := d.Writer().QueryRowContext(ctx, `SELECT (SELECT through FROM message_index_state), (SELECT COUNT(*) FROM message_index)`).
			Scan(&through, &entries); err != nil {
			t.Fatal(err)
		}
		return through, entries
	}
	if through, _ := indexed(); through != 0 {
		t.Fatalf("indexed through %d before the pipeline started, want 0", through)
	}
	p := newPipeline(t, tel, nil, ingest.Options{IndexStepRows: 7, IndexEvery: 20 * time.Millisecond})
	last := newest()
	testkit.WaitFor(t, "the index through the last message", func() bool { through, _ := indexed(); return through == last })
	for i := range 3 {
		if err := p.Submit(ctx, msg("dev1", 50+i)); err != nil {
			t.Fatal(err)
		}
	}
	last = newest()
	testkit.WaitFor(t, "the index through the last message", func() bool { through, _ := indexed(); return through == last })
	if _, entries := indexed(); entries != 53 {
		t.Errorf("%d messages indexed, want 53", entries)
	}
	for dev, want := range map[string]int{"dev1": 28, "dev2": 25} {
		if msgs, err := tel.Messages(ctx, dev, telemetry.MessageFilter{}); err != nil || len(msgs) != want {
			t.Errorf("%s lists %d messages (%v), want %d", dev, len(msgs), err, want)
		}
	}
	// 53 messages in steps of 7: at least 8 steps, each timed as the
	// writer's stall.
	if steps := p.Stats().StepSeconds[ingest.StepIndex]; steps.Count < 8 || steps.Sum <= 0 || steps.Buckets[len(steps.Buckets)-1] > steps.Count {
		t.Errorf("index steps timed: %+v, want at least 8", steps)
	}
}

// appendBacklog stores n messages, from dev1 and dev2 in turn, straight
// into the store: a log the pipeline finds unindexed when it starts.
func appendBacklog(t *testing.T, tel ingest.Store, n int) {
	t.Helper()
	var backlog []telemetry.Record
	for i := range n {
		backlog = append(backlog, telemetry.NewRecord(msg([]string{"dev1", "dev2"}[i%2], i)))
	}
	if _, err := tel.Append(context.Background(), backlog); err != nil {
		t.Fatal(err)
	}
}

// pacedStore is a store whose index steps take 5µs of clock a row, and
// which records each step's bound and rows.
type pacedStore struct {
	ingest.Store
	clock *testkit.Clock
	mu    sync.Mutex
	steps [][2]int // bound, rows indexed
}

func (s *pacedStore) IndexMessages(ctx context.Context, limit int) (int, error) {
	n, err := s.Store.IndexMessages(ctx, limit)
	s.clock.Advance(time.Duration(n) * 5 * time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, [2]int{limit, n})
	return n, err
}

// The index steps hold the writer about IndexStepTime, whatever
// IndexStepRows allows: on a store whose rows take 5µs each and a budget of
// 10ms, a backlog of 9,000 messages is taken in steps of 1,000 rows (the
// smallest step) growing to 2,000, never in one step of 9,000.
func TestPipelineIndexStepsFitTheirTime(t *testing.T) {
	_, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1", "dev2")
	appendBacklog(t, tel, 9000)
	store := &pacedStore{Store: tel, clock: testkit.NewClock(time.Now())}
	newPipeline(t, store, nil, ingest.Options{IndexStepRows: 20000, IndexStepTime: 10 * time.Millisecond, Now: store.clock.Now})
	indexed := func() (total int, steps [][2]int) {
		store.mu.Lock()
		defer store.mu.Unlock()
		for _, s := range store.steps {
			total += s[1]
		}
		return total, slices.Clone(store.steps)
	}
	testkit.WaitFor(t, "9,000 messages indexed", func() bool { total, _ := indexed(); return total == 9000 })
	_, steps := indexed()
	want := [][2]int{{1000, 1000}, {2000, 2000}, {2000, 2000}, {2000, 2000}, {2000, 2000}}
	if !slices.Equal(steps[:min(len(steps), len(want))], want) {
		t.Errorf("steps (bound, rows) %v, want %v", steps, want)
	}
}

// TestPipelineStorageFault: on a full disk Submit fails with ErrStorage and
// Health says so, once; when space returns the next commit succeeds and
// clears it. Nothing acknowledged is lost.
func TestPipelineStorageFault(t *testing.T) {
	ctx := context.Background()
	d, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	var log syncBuffer
	logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	health := storage.NewHealth(logger, db.FaultKind, nil)
	p := newPipeline(t, tel, nil, ingest.Options{Health: health, Logger: logger})
	big := func(i int) telemetry.Message {
		m := msg("dev1", i)
		m.Body = fmt.Appendf(nil, `{"n": %d, "pad": %q}`, i, strings.Repeat("x", 100_000))
		return m
	}
	if err := p.Submit(ctx, big(0)); err != nil {
		t.Fatal(err)
	}
	free := dbtest.FillUp(t, d)
	for i := 1; i <= 20; i++ {
		if err := p.Submit(ctx, big(i)); !errors.Is(err, ingest.ErrStorage) {
			t.Fatalf("submit %d on a full disk: err = %v, want ErrStorage", i, err)
		}
	}
	st := health.Status()
	if st.OK || !strings.Contains(st.Reason, "storing device messages fails (disk full)") {
		t.Errorf("health on a full disk = %+v, want the message commits failing with the disk full", st)
	}
	free()
	if err := p.Submit(ctx, big(21)); err != nil {
		t.Fatalf("submit after space returned: %v", err)
	}
	if st := health.Status(); !st.OK {
		t.Errorf("health after a commit succeeded = %+v, want OK", st)
	}
	if n := strings.Count(log.String(), "storage fault"); n != 1 {
		t.Errorf("%d fault lines for 20 failed commits, want 1:\n%s", n, log.String())
	}
	if n := strings.Count(log.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines for 20 failed commits, want 1:\n%s", n, log.String())
	}
	stored, err := tel.Messages(ctx, "dev1", telemetry.MessageFilter{})
	if err != nil || len(stored) != 2 || stored[0].MessageID != "dev1-21" || stored[1].MessageID != "dev1-0" {
		t.Errorf("stored %d messages (%v), want dev1-0 and dev1-21", len(stored), err)
	}
}

// syncBuffer is a bytes.Buffer that a logger may write from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPipelineEnqueueFunc: EnqueueFunc reports each outcome once, after
// the commit holding the message (the message is stored when done runs), in
// the order the calls returned; a failed commit reports ErrStorage and
// stores nothing.
func TestPipelineEnqueueFunc(t *testing.T) {
	ctx := context.Background()
	d, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	p := newPipeline(t, tel, nil, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	type outcome struct {
		i      int
		err    error
		stored int
	}
	outcomes := make(chan outcome, 100)
	enqueue := func(i int, m telemetry.Message) {
		t.Helper()
		err := p.EnqueueFunc(ctx, 0, func(err error) {
			// On the writer's goroutine, after the commit: a read sees it.
			stored, _ := tel.Messages(ctx, "dev1", telemetry.MessageFilter{})
			outcomes <- outcome{i, err, len(stored)}
		}, m)
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	for i := range 50 {
		enqueue(i, msg("dev1", i))
	}
	for want := range 50 {
		o := <-outcomes
		if o.i != want || o.err != nil || o.stored <= o.i {
			t.Fatalf("outcome %+v, want message %d committed and stored before its outcome", o, want)
		}
	}

	big := msg("dev1", 50)
	big.Body = fmt.Appendf(nil, `{"pad": %q}`, strings.Repeat("x", 100_000))
	free := dbtest.FillUp(t, d)
	enqueue(50, big)
	if o := <-outcomes; !errors.Is(o.err, ingest.ErrStorage) || o.stored != 50 {
		t.Errorf("outcome on a full disk %+v, want ErrStorage and nothing stored", o)
	}
	free()
	select {
	case o := <-outcomes:
		t.Errorf("a second outcome for one message: %+v", o)
	default:
	}
}

// TestPipelineSubmitGivenUpIsNotReused: a Submit that gave up on its
// context while its message waits in the queue leaves the request to the
// writer. Were it used again (single messages' requests are pooled), the
// next Submit would overwrite the queued message and hear another's
// outcome: one message stored twice, one lost, an acknowledgement early.
func TestPipelineSubmitGivenUpIsNotReused(t *testing.T) {
	ctx := context.Background()
	_, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1")
	g := newGate(tel)
	p := newPipeline(t, g, nil, ingest.Options{MaxDelay: -1})

	results := make(chan error, 3)
	go func() { results <- p.Submit(ctx, msg("dev1", 0)) }()
	<-g.entered // the writer holds message 0 in the store
	gaveUp, cancel := context.WithCancel(ctx)
	abandoned := make(chan error, 1)
	go func() { abandoned <- p.Submit(gaveUp, msg("dev1", 1)) }()
	testkit.WaitFor(t, "2 messages queued", func() bool { return p.Stats().Queued == 2 })
	cancel()
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Fatalf("submit whose context ended: err = %v, want context.Canceled", err)
	}
	for i := 2; i < 4; i++ {
		go func() { results <- p.Submit(ctx, msg("dev1", i)) }()
	}
	testkit.WaitFor(t, "4 messages queued", func() bool { return p.Stats().Queued == 4 })
	close(g.gate)
	for range 3 {
		if err := <-results; err != nil {
			t.Errorf("submit: %v", err)
		}
	}
	// Message 1 was queued before its sender gave up: it is stored too,
	// unacknowledged, like any message whose sender went away.
	testkit.WaitFor(t, "the queue drained", func() bool { return p.Stats().Queued == 0 })
	stored, err := tel.Messages(ctx, "dev1", telemetry.MessageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range stored {
		got = append(got, m.MessageID)
	}
	slices.Sort(got)
	if want := []string{"dev1-0", "dev1-1", "dev1-2", "dev1-3"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}
