package quota

import (
	"fmt"
	"testing"
	"time"
)

// clock is a test clock moved by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time             { return c.now }
func (c *clock) advance(d time.Duration)    { c.now = c.now.Add(d) }
func newClock() *clock                      { return &clock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }
func devices(c *clock, cfg Config) *Devices { cfg.Now = c.Now; return New(cfg) }

func TestTakeMessages(t *testing.T) {
	c := newClock()
	d := devices(c, Config{MessageRate: 1, MessageBurst: 2})
	steps := []struct {
		advance  time.Duration
		n        int
		wantWait time.Duration
	}{
		{0, 1, 0},
		{0, 1, 0},
		{0, 1, time.Second}, // empty: refused, one token a second
		{500 * time.Millisecond, 1, 500 * time.Millisecond},
		{500 * time.Millisecond, 1, 0},    // refilled
		{2 * time.Second, 5, 0},           // full bucket: a batch over the burst is admitted…
		{0, 1, 4 * time.Second},           // …and waited off: 2 - 5 = -3, one more needs 4 s
		{4 * time.Second, 3, time.Second}, // 1 token: a batch of 3 needs 2 (the burst)
	}
	throttled := int64(0)
	for i, s := range steps {
		c.advance(s.advance)
		got := d.TakeMessages("dev1", s.n)
		if got != s.wantWait {
			t.Errorf("step %d: TakeMessages(%d) = %v, want %v", i, s.n, got, s.wantWait)
		}
		if s.wantWait > 0 {
			throttled += int64(s.n)
		}
	}
	if got := d.Throttled("dev1"); got != (Counts{Messages: throttled}) {
		t.Errorf("Throttled = %+v, want %d messages", got, throttled)
	}
	if got := d.Throttled("dev2"); got != (Counts{}) {
		t.Errorf("another device: Throttled = %+v, want zero", got)
	}
}

func TestReserveMessage(t *testing.T) {
	c := newClock()
	d := devices(c, Config{MessageRate: 10, MessageBurst: 2})
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	for i, w := range want {
		if got := d.ReserveMessage("dev1"); got != w {
			t.Errorf("message %d: wait %v, want %v", i, got, w)
		}
	}
	if got := d.Throttled("dev1").Messages; got != 3 {
		t.Errorf("%d messages throttled, want 3", got)
	}
	c.advance(time.Second) // 0.7 s after the last reservation came due
	if got := d.ReserveMessage("dev1"); got != 0 {
		t.Errorf("after a quiet second: wait %v, want 0", got)
	}
}

func TestAllowConnect(t *testing.T) {
	c := newClock()
	d := devices(c, Config{ConnectRate: 1, ConnectBurst: 3})
	for i := range 3 {
		if !d.AllowConnect("dev1") {
			t.Fatalf("connection %d refused within the burst", i+1)
		}
	}
	if d.AllowConnect("dev1") {
		t.Fatal("fourth connection at once allowed")
	}
	if !d.AllowConnect("dev2") {
		t.Fatal("another device refused")
	}
	c.advance(time.Second)
	if !d.AllowConnect("dev1") {
		t.Fatal("refused after a second")
	}
	if got := d.Throttled("dev1"); got != (Counts{Connects: 1}) {
		t.Errorf("Throttled = %+v, want 1 connect", got)
	}
}

func TestUnlimited(t *testing.T) {
	var none *Devices
	d := New(Config{})
	for _, d := range []*Devices{none, d} {
		for range 10_000 {
			if d.TakeMessages("dev1", 100) != 0 || d.ReserveMessage("dev1") != 0 || !d.AllowConnect("dev1") {
				t.Fatal("a budget of rate 0 refused something")
			}
		}
		if d.Throttled("dev1") != (Counts{}) || d.Len() != 0 {
			t.Errorf("unlimited budgets keep state: %+v, %d entries", d.Throttled("dev1"), d.Len())
		}
	}
}

// TestBoundedMemory drives 10,000 devices through budgets for 100: the map
// never grows beyond 100 entries, idle devices go first, and a device that
// was throttled keeps its counts while idle ones make room.
func TestBoundedMemory(t *testing.T) {
	c := newClock()
	d := devices(c, Config{MessageRate: 10, MessageBurst: 1, ConnectRate: 1, MaxDevices: 100})
	d.TakeMessages("hot", 1)
	if d.TakeMessages("hot", 1) == 0 {
		t.Fatal("hot device not throttled")
	}
	for i := range 10_000 {
		c.advance(time.Second) // everyone before is idle again
		d.TakeMessages(fmt.Sprintf("dev%05d", i), 1)
		d.AllowConnect(fmt.Sprintf("dev%05d", i))
		if n := d.Len(); n > 100 {
			t.Fatalf("after %d devices: %d entries kept, want at most 100", i+1, n)
		}
	}
	if got := d.Throttled("hot").Messages; got != 1 {
		t.Errorf("hot device's count = %d after idle devices were swept, want 1", got)
	}

	// Devices that stay busy fill the map; it still stays bounded.
	busy := devices(c, Config{MessageRate: 0.001, MessageBurst: 1, MaxDevices: 100})
	for i := range 1000 {
		busy.TakeMessages(fmt.Sprintf("dev%04d", i), 1)
		busy.TakeMessages(fmt.Sprintf("dev%04d", i), 1) // throttled: counts, and an empty bucket
		if n := busy.Len(); n > 100 {
			t.Fatalf("busy devices: %d entries kept, want at most 100", n)
		}
	}
}
