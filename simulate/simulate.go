// Package simulate runs simulated devices that send telemetry (temperature,
// humidity, battery) through the real device protocol: HTTPS POSTs to
// /devices/{id}/messages/events authenticated with SAS tokens, exactly as the
// Azure IoT device SDK sends them. `fieldhub simulate` and `serve --demo` use it.
package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fieldhub/auth"
)

// Device is one simulated device's identity.
type Device struct {
	ID  string
	Key string // base64 device key (primary)
}

// Config says what to simulate and where to send it.
type Config struct {
	// URL is the hub's device endpoint, e.g. https://localhost:8443.
	URL string
	// HostName goes into the SAS tokens' resource (host[:port]); empty uses
	// the host of URL.
	HostName string
	Devices  []Device
	// Interval between two messages of one device (default 1 s).
	Interval time.Duration
	// Client sends the requests; it must trust the hub's certificate.
	Client *http.Client
	Logger *slog.Logger
	// Seed varies the sensor values; with the same seed a device sends the
	// same values every run.
	Seed uint64
	// TokenTTL is the lifetime of the SAS tokens (default 1 h); they are
	// renewed after three quarters of it, like the SDK does.
	TokenTTL time.Duration
}

// Stats counts what a run did.
type Stats struct {
	Sent   atomic.Int64 // messages acknowledged by the hub
	Failed atomic.Int64 // messages refused or lost
}

// Run sends telemetry from every device until ctx ends, then returns nil.
// It returns an error only for a configuration it cannot run.
func Run(ctx context.Context, cfg Config, stats *Stats) error {
	if len(cfg.Devices) == 0 {
		return errors.New("simulate: no devices to run")
	}
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return fmt.Errorf("simulate: device endpoint %q is not an https://host:port address", cfg.URL)
	}
	if cfg.HostName == "" {
		cfg.HostName = base.Host
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if stats == nil {
		stats = &Stats{}
	}
	var wg sync.WaitGroup
	for i, d := range cfg.Devices {
		// Seeded by the device id, so a device keeps its character (its
		// room's temperature) across runs.
		id := fnv.New64a()
		id.Write([]byte(d.ID))
		sim := &device{
			cfg: &cfg, dev: d, stats: stats,
			endpoint: strings.TrimSuffix(cfg.URL, "/") + "/devices/" + url.PathEscape(d.ID) + "/messages/events?api-version=2021-04-12",
			sensors:  newSensors(rand.New(rand.NewPCG(cfg.Seed, id.Sum64()))),
		}
		// Stagger the devices over one interval so they do not all send at once.
		offset := cfg.Interval * time.Duration(i) / time.Duration(len(cfg.Devices))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sim.run(ctx, offset)
		}()
	}
	wg.Wait()
	return nil
}

// device is one running simulated device.
type device struct {
	cfg      *Config
	dev      Device
	stats    *Stats
	endpoint string
	sensors  *sensors
	token    string
	renewAt  time.Time
	seq      int
	warned   bool
}

func (d *device) run(ctx context.Context, offset time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	for {
		wait := d.send(ctx)
		if wait > 0 {
			// The hub asked us to back off (429/503 with Retry-After).
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// message is the JSON body of one simulated message.
type message struct {
	Temperature float64 `json:"temperature"`
	Humidity    float64 `json:"humidity"`
	Battery     float64 `json:"battery"`
}

// send posts one message and returns how long to back off, if at all.
func (d *device) send(ctx context.Context) time.Duration {
	now := time.Now()
	if d.token == "" || now.After(d.renewAt) {
		tok, err := auth.SignSAS(d.cfg.HostName+"/devices/"+d.dev.ID, d.dev.Key, now.Add(d.cfg.TokenTTL))
		if err != nil {
			d.fail(fmt.Errorf("sign token: %w", err))
			return time.Minute
		}
		d.token, d.renewAt = tok, now.Add(d.cfg.TokenTTL*3/4)
	}
	t, h, b := d.sensors.reading()
	body, _ := json.Marshal(message{Temperature: t, Humidity: h, Battery: b})
	d.seq++
	// A message in flight when the run stops is finished, not cut off, so
	// stopping never leaves the hub with half a request.
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, d.endpoint, strings.NewReader(string(body)))
	if err != nil {
		d.fail(err)
		return time.Minute
	}
	req.Header.Set("Authorization", d.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("iothub-contenttype", "application/json")
	req.Header.Set("iothub-contentencoding", "utf-8")
	req.Header.Set("iothub-messageid", d.dev.ID+"-"+strconv.FormatInt(now.UnixMilli(), 36)+"-"+strconv.Itoa(d.seq))
	req.Header.Set("iothub-app-source", "simulator")
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		d.fail(err)
		return 0
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode < 300 {
		d.stats.Sent.Add(1)
		d.warned = false
		return 0
	}
	d.fail(fmt.Errorf("hub answered %s: %s", resp.Status, strings.TrimSpace(string(msg))))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			return time.Duration(s) * time.Second
		}
		return d.cfg.Interval
	}
	if resp.StatusCode == http.StatusUnauthorized {
		d.token = "" // sign a fresh one next time
	}
	return 0
}

// fail counts a failed message and logs the first of a run of failures.
func (d *device) fail(err error) {
	d.stats.Failed.Add(1)
	if !d.warned {
		d.warned = true
		d.cfg.Logger.Warn("simulated device could not send", "device", d.dev.ID, "err", err)
	}
}
