package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"fieldhub/db"
	"fieldhub/simulate"
	"fieldhub/storage"
)

// simulateConfig is every setting of `fieldhub simulate`.
type simulateConfig struct {
	URL       string
	Devices   int
	Interval  time.Duration
	DataDir   string
	API       string
	Token     string
	CA        string
	Prefix    string
	HostName  string
	Duration  time.Duration
	Protocol  string // https or mqtt
	MQTTAddr  string
	LogFormat string
}

const simulateUsage = "simulate --url https://HOST:PORT [--devices N] [--interval 1s] (--data DIR | --api URL --token T) [--ca FILE] [--prefix sim-]"

func parseSimulate(e env, args []string) (simulateConfig, error) {
	var cfg simulateConfig
	fs := newFlagSet(e, "simulate", simulateUsage)
	fs.StringVar(&cfg.URL, "url", "https://localhost:8443", "the hub's device endpoint")
	fs.IntVar(&cfg.Devices, "devices", 5, "how many devices to simulate")
	fs.DurationVar(&cfg.Interval, "interval", time.Second, "time between two messages of one device")
	fs.StringVar(&cfg.DataDir, "data", "", "take device keys from the hub's data folder (creating missing devices)")
	fs.StringVar(&cfg.API, "api", "", "take device keys from the operator API at this address, e.g. http://localhost:8080 (needs --token)")
	fs.StringVar(&cfg.Token, "token", envOr(e, "FIELDHUB_TOKEN", ""), "admin API token for --api (env FIELDHUB_TOKEN)")
	fs.StringVar(&cfg.CA, "ca", "", "CA certificate (PEM) to trust for the device endpoint, e.g. <data>/tls/ca.pem (default: <data>/tls/ca.pem with --data, else the system roots)")
	fs.StringVar(&cfg.Prefix, "prefix", "sim-", "device id prefix; devices are <prefix>001, <prefix>002, …")
	fs.StringVar(&cfg.HostName, "hostname", "", "host name in the SAS tokens (default: the host of --url)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (default: run until interrupted)")
	fs.StringVar(&cfg.Protocol, "protocol", "https", "https (POST telemetry) or mqtt (telemetry, cloud-to-device messages, methods and twins over MQTT)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt-addr", "localhost:8883", "the hub's MQTT endpoint, host:port, with --protocol mqtt")
	fs.StringVar(&cfg.LogFormat, "log-format", envOr(e, "FIELDHUB_LOG_FORMAT", "text"), logFormatUsage)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return cfg, err
	}
	switch {
	case len(pos) != 0:
		return cfg, usagef("simulate takes no arguments, got %q", pos)
	case cfg.Devices < 1 || cfg.Devices > 100_000:
		return cfg, usagef("simulate: --devices must be 1..100000, got %d", cfg.Devices)
	case cfg.Interval < 10*time.Millisecond:
		return cfg, usagef("simulate: --interval must be at least 10ms, got %s", cfg.Interval)
	case (cfg.DataDir == "") == (cfg.API == ""):
		return cfg, usagef("simulate: give either --data DIR (keys from the database) or --api URL --token T (keys from the API)")
	case cfg.API != "" && cfg.Token == "":
		return cfg, usagef("simulate: --api needs --token with an admin API token")
	case cfg.Prefix == "":
		return cfg, usagef("simulate: --prefix must not be empty")
	case cfg.Protocol != "https" && cfg.Protocol != "mqtt":
		return cfg, usagef("simulate: --protocol must be https or mqtt, got %q", cfg.Protocol)
	}
	if u, err := url.Parse(cfg.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		return cfg, usagef("simulate: --url %q must be the device endpoint, https://host:port", cfg.URL)
	}
	// The ids differ only in their digits: the last is as long as any.
	ids := simulate.DeviceIDs(cfg.Prefix, cfg.Devices)
	if id := ids[len(ids)-1]; db.ValidateDeviceID(id) != nil {
		return cfg, usagef("simulate: --prefix %q makes device ids like %q: %v", cfg.Prefix, id, db.ValidateDeviceID(id))
	}
	return cfg, nil
}

func runSimulate(ctx context.Context, e env, args []string) error {
	cfg, err := parseSimulate(e, args)
	if err != nil {
		return err
	}
	log, err := newLogger(e.stderr, "info", cfg.LogFormat)
	if err != nil {
		return err
	}
	caFile := cfg.CA
	if caFile == "" && cfg.DataDir != "" {
		caFile = cfg.DataDir + "/tls/ca.pem"
	}
	client, err := deviceClient(caFile, cfg.CA != "")
	if err != nil {
		return err
	}

	specs := simulate.Specs(cfg.Prefix, cfg.Devices)
	var devices []simulate.Device
	if cfg.DataDir != "" {
		store, err := openDB(ctx, cfg.DataDir)
		if err != nil {
			return err
		}
		devices, err = simulate.Provision(ctx, cliRegistry(store, e), actorCLI, specs)
		store.Close()
		if err != nil {
			return err
		}
	} else {
		devices, err = simulate.ProvisionAPI(ctx, &http.Client{Timeout: 30 * time.Second}, cfg.API, cfg.Token, specs)
		if err != nil {
			return err
		}
	}

	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	target := cfg.URL
	if cfg.Protocol == "mqtt" {
		target = "mqtts://" + cfg.MQTTAddr
	}
	fmt.Fprintf(e.stderr, "simulating %d devices (%s … %s) every %s against %s; Ctrl+C stops\n",
		len(devices), devices[0].ID, devices[len(devices)-1].ID, cfg.Interval, target)
	var stats simulate.Stats
	start := time.Now()
	if cfg.Protocol == "mqtt" {
		tlsCfg := client.Transport.(*http.Transport).TLSClientConfig // trusts --ca
		err = simulate.RunMQTT(ctx, simulate.MQTTConfig{
			Addr: cfg.MQTTAddr, HostName: cfg.HostName, Devices: devices, Interval: cfg.Interval, TLS: tlsCfg, Logger: log,
		}, &stats)
	} else {
		err = simulate.Run(ctx, simulate.Config{
			URL: cfg.URL, HostName: cfg.HostName, Devices: devices, Interval: cfg.Interval, Client: client, Logger: log,
		}, &stats)
	}
	fmt.Fprintf(e.stdout, "sent %d messages in %s, %d failed\n", stats.Sent.Load(), time.Since(start).Round(time.Second), stats.Failed.Load())
	return err
}

// deviceClient is an HTTPS client for the device endpoint that trusts caFile
// (when it exists; required says a missing file is an error) besides the
// system roots.
func deviceClient(caFile string, required bool) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1024
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		switch {
		case err == nil:
			pool, _ := x509.SystemCertPool()
			if pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca %s holds no PEM certificate", caFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		case required || !os.IsNotExist(err):
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// demoDevices are what `serve --demo` creates on first start.
var demoDevices = []simulate.Spec{
	{ID: "greenhouse-north", Name: "Greenhouse north", Tags: map[string]string{"site": "berlin", "kind": "climate", "demo": "true"}},
	{ID: "greenhouse-south", Name: "Greenhouse south", Tags: map[string]string{"site": "berlin", "kind": "climate", "demo": "true"}},
	{ID: "cold-store-2", Name: "Cold store 2", Tags: map[string]string{"site": "hamburg", "kind": "storage", "demo": "true"}},
	{ID: "office-3f", Name: "Office, 3rd floor", Tags: map[string]string{"site": "munich", "kind": "building", "demo": "true"}},
	{ID: "server-room", Name: "Server room", Tags: map[string]string{"site": "munich", "kind": "building", "demo": "true"}},
}

// settingDemoCreated records that the demo devices were created once, so a
// demo device the operator deleted stays deleted.
const settingDemoCreated = "demo_devices_created"

// demoFleet returns the demo devices to run: created on first start, and
// afterwards those still present and enabled.
func demoFleet(ctx context.Context, store *db.DB, reg simulate.Registry) ([]simulate.Device, error) {
	created, err := store.Setting(ctx, settingDemoCreated, "")
	if err != nil {
		return nil, err
	}
	if created == "" {
		devices, err := simulate.Provision(ctx, reg, "demo", demoDevices)
		if err != nil {
			return nil, err
		}
		if err := store.SetSetting(ctx, settingDemoCreated, time.Now().UTC().Format(time.RFC3339)); err != nil {
			return nil, err
		}
		return devices, nil
	}
	var devices []simulate.Device
	for _, s := range demoDevices {
		d, err := reg.Device(ctx, s.ID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if d.Enabled {
			devices = append(devices, simulate.Device{ID: d.DeviceID, Key: d.PrimaryKey})
		}
	}
	return devices, nil
}

// demoMQTTDevices speak MQTT in the demo (when the broker runs), so the
// dashboard shows live presence, direct methods and twins; the rest POST
// over HTTPS.
var demoMQTTDevices = map[string]bool{"office-3f": true, "server-room": true}

// startDemo runs the demo devices in-process against the device endpoint
// (url, trusted by client; hostName goes into their SAS tokens) and, when
// mqttAddr is set, some of them against the MQTT broker there, until the
// returned stop is called. stop waits for the devices' last requests, so
// it must run before the ingest pipeline drains.
func startDemo(ctx context.Context, store *db.DB, reg simulate.Registry, url, hostName string, client *http.Client, mqttAddr string, log *slog.Logger) (stop func(), err error) {
	devices, err := demoFleet(ctx, store, reg)
	if err != nil {
		return nil, fmt.Errorf("demo devices: %w", err)
	}
	if len(devices) == 0 {
		log.Info("demo: no demo devices left to run")
		return func() {}, nil
	}
	var overHTTPS, overMQTT []simulate.Device
	for _, d := range devices {
		if mqttAddr != "" && demoMQTTDevices[d.ID] {
			overMQTT = append(overMQTT, d)
		} else {
			overHTTPS = append(overHTTPS, d)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if len(overHTTPS) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = simulate.Run(ctx, simulate.Config{
				URL: url, HostName: hostName, Devices: overHTTPS, Interval: time.Second, Client: client,
				Logger: log.With("component", "demo"),
			}, nil)
		}()
	}
	if len(overMQTT) > 0 {
		addr, err := loopbackAddr(mqttAddr)
		if err != nil {
			cancel()
			wg.Wait()
			return nil, fmt.Errorf("demo: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = simulate.RunMQTT(ctx, simulate.MQTTConfig{
				Addr: addr, HostName: hostName, Devices: overMQTT, Interval: time.Second,
				TLS:    client.Transport.(*http.Transport).TLSClientConfig,
				Logger: log.With("component", "demo"),
			}, nil)
		}()
	}
	log.Info("demo: running simulated devices", "https", len(overHTTPS), "mqtt", len(overMQTT), "endpoint", url)
	return func() {
		cancel()
		wg.Wait()
	}, nil
}

// loopbackAddr turns a listen address into one to dial on this machine.
func loopbackAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("address %q is not host:port: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// demoEndpoint is how the in-process demo reaches the device listener at
// addr: over loopback when it listens on every interface, trusting the
// listener's own certificate chain, with host (a name the certificate
// covers) as the TLS server name.
func demoEndpoint(addr net.Addr, host string, cert tls.Certificate) (string, *http.Client, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", nil, fmt.Errorf("demo: device listener address %s is not TCP", addr)
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", nil, fmt.Errorf("demo: parse the device listener's certificate: %w", err)
		}
		pool.AddCert(c)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	url := "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
	return url, &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}
