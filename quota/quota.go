// Package quota keeps per-device budgets, as Azure IoT Hub's quotas: how
// many device-to-cloud messages a device may send a second, and how often
// it may connect over MQTT. Each budget is a token bucket; the buckets of
// the devices seen lately live in a bounded map. A device over its budget
// is refused (HTTPS: 429) or held back (MQTT), and counted.
package quota

import (
	"math"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultMessageRate  = 1000 // messages a second per device
	DefaultConnectRate  = 1    // MQTT connections a second per device
	DefaultConnectBurst = 10
	DefaultMaxDevices   = 100_000
)

// Config sets the budgets. A rate of 0 leaves that budget unlimited.
type Config struct {
	// MessageRate is how many device-to-cloud messages a device may send a
	// second; MessageBurst how many at once after a quiet spell (default
	// twice the rate, at least 1). A batch counts as its messages.
	MessageRate  float64
	MessageBurst int
	// ConnectRate is how many MQTT connections a device may open a second;
	// ConnectBurst how many in a row (default 10).
	ConnectRate  float64
	ConnectBurst int
	// MaxDevices bounds how many devices' buckets and counts are kept
	// (default 100,000); beyond it the idlest are forgotten.
	MaxDevices int
	Now        func() time.Time
}

// Counts are how many of a device's messages and connections were
// throttled since the hub started (while its entry was kept).
type Counts struct {
	Messages int64 `json:"messages"`
	Connects int64 `json:"connects"`
}

// Devices holds every device's budgets. Its methods are safe for concurrent
// use. A nil *Devices limits nothing.
type Devices struct {
	cfg       Config
	mu        sync.Mutex
	byDevice  map[string]*entry
	lastSweep time.Time
}

type entry struct {
	messages, connects bucket
	throttled          Counts
}

// bucket is a token bucket: tokens as of at. Tokens may go below zero when
// a batch larger than the burst is admitted; the device then waits it off.
type bucket struct {
	tokens float64
	at     time.Time
}

// level returns the bucket's tokens at now, refilled at rate up to burst.
func (b *bucket) level(now time.Time, rate, burst float64) float64 {
	if b.at.IsZero() {
		return burst
	}
	return math.Min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
}

// New makes the budgets; zero fields of cfg other than the rates take their
// defaults.
func New(cfg Config) *Devices {
	if cfg.MessageBurst <= 0 {
		cfg.MessageBurst = max(1, int(math.Ceil(2*cfg.MessageRate)))
	}
	if cfg.ConnectBurst <= 0 {
		cfg.ConnectBurst = DefaultConnectBurst
	}
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = DefaultMaxDevices
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Devices{cfg: cfg, byDevice: make(map[string]*entry)}
}

// MessageRate and MessageBurst are the message budget (0: unlimited).
func (d *Devices) MessageRate() float64 {
	if d == nil {
		return 0
	}
	return d.cfg.MessageRate
}

// MessageBurst is how many messages a device may send at once.
func (d *Devices) MessageBurst() int {
	if d == nil {
		return 0
	}
	return d.cfg.MessageBurst
}

// TakeMessages admits n messages of a device, or refuses them all: it
// returns 0 when they fit the budget (and takes them from it), else how
// long until they would, counting them as throttled. n messages fit when
// the bucket holds n tokens, or is full when n is more than a burst (a
// batch larger than the burst is admitted and waited off afterwards).
func (d *Devices) TakeMessages(deviceID string, n int) time.Duration {
	if d == nil || d.cfg.MessageRate <= 0 || n <= 0 {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	e := d.entry(deviceID, now)
	rate, burst := d.cfg.MessageRate, float64(d.cfg.MessageBurst)
	level := e.messages.level(now, rate, burst)
	need := math.Min(float64(n), burst)
	if level >= need {
		e.messages = bucket{tokens: level - float64(n), at: now}
		return 0
	}
	e.throttled.Messages += int64(n)
	return seconds((need - level) / rate)
}

// ReserveMessage takes one message of a device from its budget at once and
// returns how long the caller must wait before sending it on (0: at once).
// A caller that can hold its sender back (MQTT stops reading the
// connection) waits instead of refusing; a message that must wait counts as
// throttled.
func (d *Devices) ReserveMessage(deviceID string) time.Duration {
	if d == nil || d.cfg.MessageRate <= 0 {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	e := d.entry(deviceID, now)
	rate := d.cfg.MessageRate
	level := e.messages.level(now, rate, float64(d.cfg.MessageBurst)) - 1
	e.messages = bucket{tokens: level, at: now}
	if level >= 0 {
		return 0
	}
	e.throttled.Messages++
	return seconds(-level / rate)
}

// AllowConnect takes one connection of a device from its budget, or
// reports false (and counts it) when the device connected too often.
func (d *Devices) AllowConnect(deviceID string) bool {
	if d == nil || d.cfg.ConnectRate <= 0 {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	e := d.entry(deviceID, now)
	level := e.connects.level(now, d.cfg.ConnectRate, float64(d.cfg.ConnectBurst))
	if level < 1 {
		e.throttled.Connects++
		return false
	}
	e.connects = bucket{tokens: level - 1, at: now}
	return true
}

// Throttled returns the device's counts (zero for a device never throttled
// or no longer kept).
func (d *Devices) Throttled(deviceID string) Counts {
	if d == nil {
		return Counts{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.byDevice[deviceID]; e != nil {
		return e.throttled
	}
	return Counts{}
}

// Len is how many devices' entries are kept.
func (d *Devices) Len() int {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byDevice)
}

// entry returns the device's entry, creating it; the caller holds d.mu.
// Creating one in a full map, or a minute after the last sweep, sweeps.
func (d *Devices) entry(deviceID string, now time.Time) *entry {
	e := d.byDevice[deviceID]
	if e != nil {
		return e
	}
	if len(d.byDevice) >= d.cfg.MaxDevices || now.Sub(d.lastSweep) >= time.Minute {
		d.sweep(now)
	}
	e = &entry{}
	d.byDevice[deviceID] = e
	return e
}

// sweep forgets entries that no longer matter: devices whose buckets are
// full again (a new entry would start the same) and that were never
// throttled. When the map is still full it forgets idle devices' counts
// too, and as a last resort any entries, down to 90% of MaxDevices, so that
// memory stays bounded whatever the devices do.
func (d *Devices) sweep(now time.Time) {
	d.lastSweep = now
	idle := func(e *entry) bool {
		return (d.cfg.MessageRate <= 0 || e.messages.level(now, d.cfg.MessageRate, float64(d.cfg.MessageBurst)) >= float64(d.cfg.MessageBurst)) &&
			(d.cfg.ConnectRate <= 0 || e.connects.level(now, d.cfg.ConnectRate, float64(d.cfg.ConnectBurst)) >= float64(d.cfg.ConnectBurst))
	}
	for id, e := range d.byDevice {
		if e.throttled == (Counts{}) && idle(e) {
			delete(d.byDevice, id)
		}
	}
	target := d.cfg.MaxDevices * 9 / 10
	if len(d.byDevice) < d.cfg.MaxDevices {
		return
	}
	for id, e := range d.byDevice {
		if len(d.byDevice) <= target {
			return
		}
		if idle(e) {
			delete(d.byDevice, id)
		}
	}
	for id := range d.byDevice { // map order is random: no device is singled out
		if len(d.byDevice) <= target {
			return
		}
		delete(d.byDevice, id)
	}
}

// seconds converts a wait in seconds to a Duration, at least a nanosecond.
func seconds(s float64) time.Duration {
	return max(time.Nanosecond, time.Duration(math.Ceil(s*float64(time.Second))))
}
