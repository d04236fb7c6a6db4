// Package app is the hub as one process: it builds every part, starts them
// in order and stops them in reverse order. `fieldhub serve` parses its
// flags into a Config and runs an App; tests start the hub in-process the
// same way.
//
// New starts the parts in this order, each after what it needs
// (App.start lists it once):
//
//  1. the data folder's lock, then the file limit and connection caps
//  2. the store, migrated; connections reset (none survives a restart);
//     the first admin
//  3. the retention pruner (audit log, expired sessions)
//  4. the device endpoints' certificate, the start-up checks (doctor) and
//     the device listener, bound: its port goes into connection strings
//  5. the bus to the other instances of a cluster (NATS), the live hub
//     relaying to it, and storage health announced on the hub
//  6. the command services (the cloud-to-device sweeper); on a shared store
//     (PostgreSQL), the cluster lease: this node's previous connections
//     taken back, lost instances watched (package cluster)
//  7. the telemetry store, which recovers the log after its last
//     checkpoint, and the ingest pipeline writing to it; alerting, which
//     recovers its evaluator and takes the pipeline's committed batches
//  8. the device registry and the MQTT broker, listening
//  9. jobs: stored ones resumed once the transport reaches devices
//  10. the handlers and the device HTTPS server, serving
//  11. the dashboard server, serving
//  12. the demo's simulated devices
//
// Close stops them in reverse: the demo's devices, every server (nothing
// new arrives), jobs, the broker, ingest drains (whatever was accepted commits),
// the sweeper, the live streams, the bus, the pruner, the database and last the
// lock. Each stop is bounded; one that overruns is logged and left behind
// so that the process can still end.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"fieldhub/quota"
)

// Config is every setting of the hub, parsed once (cmd/fieldhub) and
// passed down.
type Config struct {
	Addr    string // dashboard and API
	DataDir string
	// Store is the PostgreSQL database (postgres://USER:PASS@HOST/DB) that
	// holds every kind of state; "" keeps it in SQLite in DataDir.
	Store    string
	Demo     bool
	Hostname string // what devices dial; goes into connection strings
	// ClockURL is a URL whose HTTP Date the clock is compared with at start.
	ClockURL string
	// MQTTAddr is the MQTT-over-TLS device endpoint ("" turns MQTT off);
	// MQTTPlainAddr an optional unencrypted one, loopback only.
	MQTTAddr      string
	MQTTPlainAddr string
	// DeviceAddr is the Azure-compatible HTTPS device endpoint; TLSCert and
	// TLSKey its certificate (default: generated into <data>/tls).
	DeviceAddr string
	TLSCert    string
	TLSKey     string
	// Retention is how long raw readings are kept; MessageRetention the
	// message log (0: as Retention); the rollups' are how long 1-minute and
	// 1-hour summaries are kept (0: telemetry's defaults).
	Retention             time.Duration
	MessageRetention      time.Duration
	MinuteRollupRetention time.Duration
	HourRollupRetention   time.Duration
	// DeviceQuota is each device's budget: messages a second (with a burst)
	// and MQTT connections a second; a rate of 0 is unlimited.
	DeviceQuota quota.Config
	// AuditRetention is how long audit log entries are kept.
	AuditRetention time.Duration
	// AlertRetention is how long cleared alerts and webhook delivery logs
	// are kept.
	AlertRetention time.Duration
	// WebhookAllowLoopback lets webhooks reach loopback receivers.
	WebhookAllowLoopback bool
	// DashboardTLS serves the dashboard over HTTPS with the device
	// endpoints' certificate.
	DashboardTLS bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For counts.
	TrustedProxies []netip.Prefix
	// Listen is the listeners' timeouts and connection caps.
	Listen ListenConfig
	// MetricsAddr serves GET /metrics without sign-in (metricsaddr.go),
	// loopback only, for a scraper on this machine; "" is off.
	MetricsAddr string
	// PprofAddr serves Go's runtime profiles (pprof.go), loopback only; ""
	// (the default) is off.
	PprofAddr string
	// Bus are the NATS servers that join this instance to the others of a
	// cluster (package bus); none: the hub is one process.
	Bus []string
	// Node names this instance in the cluster (default: the host name and
	// the dashboard's port).
	Node string
	// Lease is how long this instance's lease in a shared store lasts
	// unrenewed (package cluster; default 15 s).
	Lease time.Duration
	// MemoryLimitMiB is the soft limit of the hub's Go memory while its live
	// data leaves a quarter of it free (memory.go); 0 leaves Go's defaults.
	MemoryLimitMiB int

	// Version and Commit name the build in the start log.
	Version, Commit string
	Logger          *slog.Logger
	// Banner, when set, gets the lines for people at start: where the
	// dashboard is and, on the first start, admin's password.
	Banner io.Writer
}

// App is a running hub.
type App struct {
	cfg   Config
	log   *slog.Logger
	parts // what start built, in start.go

	errc      chan error // a server that failed
	stops     []stop     // in start order
	closeOnce sync.Once
	closeErr  error
}

// stop is how one part stops, within bound.
type stop struct {
	name  string
	bound time.Duration
	fn    func(ctx context.Context) error
}

// Bounds of the stops: servers let requests in flight finish, ingest
// commits what it accepted, the rest only cancels and waits.
const (
	serverStop = 10 * time.Second
	drainStop  = 30 * time.Second
	quickStop  = 5 * time.Second
)

// New starts every part of the hub in order; it serves when New returns.
// If a part fails to start, the ones started are stopped again.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &App{cfg: cfg, log: cfg.Logger, errc: make(chan error, 2)}
	if err := a.start(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// onStop registers how a part that just started stops.
func (a *App) onStop(name string, bound time.Duration, fn func(ctx context.Context) error) {
	a.stops = append(a.stops, stop{name: name, bound: bound, fn: fn})
}

// Run waits until ctx ends (nil) or a server fails (its error). It does not
// stop the hub: Close does, either way.
func (a *App) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
		return nil
	case err := <-a.errc:
		return err
	}
}

// Close stops every part in reverse order of start, each within its bound,
// logs each failure and returns them. Calling it again does nothing.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		for i := len(a.stops) - 1; i >= 0; i-- {
			s := a.stops[i]
			if err := stopWithin(s); err != nil {
				attrs := []any{"err", err}
				if errors.Is(err, errStopTimeout) {
					// What the part still waits on is the only clue to a hang
					// at shutdown; the process may be killed right after.
					attrs = append(attrs, "goroutines", goroutineDump(maxDump))
				}
				a.log.Error("stop "+s.name, attrs...)
				errs = append(errs, fmt.Errorf("stop %s: %w", s.name, err))
			}
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// stopWithin runs s.fn with a context that ends after s.bound, and gives
// up on it then even if it does not return: the stops after it still run.
func stopWithin(s stop) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.bound)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w %s; going on", errStopTimeout, s.bound)
	}
}

// errStopTimeout is a part that did not stop within its bound.
var errStopTimeout = errors.New("did not stop within")

// maxDump bounds the goroutine dump logged when a part does not stop: a
// hub with 100,000 connections has as many goroutines.
const maxDump = 256 << 10

// goroutineDump returns the stacks of all goroutines, cut at limit bytes.
func goroutineDump(limit int) string {
	buf := make([]byte, limit)
	return string(buf[:runtime.Stack(buf, true)])
}

// URL is where the dashboard is.
func (a *App) URL() string { return a.url }

// DeviceAddr is the HTTPS device endpoint's address.
func (a *App) DeviceAddr() string { return a.deviceLn.Addr().String() }

// MQTTAddr is the MQTT-over-TLS endpoint's address, "" when MQTT is off.
func (a *App) MQTTAddr() string { return a.mqttAddr }
