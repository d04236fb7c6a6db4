package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"fieldhub/db"
	"fieldhub/simulate"
)

// simulateConfig is every setting of `fieldhub simulate`.
type simulateConfig struct {
	URL       string
	Devices   int
	Interval  time.Duration
	DataDir   string
	Store     string
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
	fs.StringVar(&cfg.Store, "store", "", "with --data: the hub's PostgreSQL database, postgres://USER:PASSWORD@HOST[:PORT]/DATABASE, when it keeps its state there")
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
		store, err := openDB(ctx, location{data: &cfg.DataDir, store: &cfg.Store})
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
