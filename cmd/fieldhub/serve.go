package main

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"fieldhub/app"
	"fieldhub/bus"
	"fieldhub/mqtt"
	"fieldhub/quota"
	"fieldhub/retention"
	"fieldhub/telemetry"
)

// serveConfig is every setting of `fieldhub serve`, parsed once: the hub's
// (app.Config) and how it logs.
type serveConfig struct {
	app.Config
	LogLevel string
	// LogFormat is text or json.
	LogFormat string
}

func parseServe(e env, args []string) (serveConfig, error) { return parseServeAs(e, "serve", args) }

// parseServeAs parses serve's flags for the command name (doctor takes them too).
func parseServeAs(e env, name string, args []string) (serveConfig, error) {
	cfg := serveConfig{Config: app.Config{Listen: app.DefaultListenConfig()}}
	fs := newFlagSet(e, name, name+" [flags]")
	fs.StringVar(&cfg.Addr, "addr", envOr(e, "FIELDHUB_ADDR", "127.0.0.1:8080"), "dashboard and API listen address (env FIELDHUB_ADDR)")
	fs.StringVar(&cfg.DataDir, "data", envOr(e, "FIELDHUB_DATA", "./data"), "data folder (env FIELDHUB_DATA)")
	fs.StringVar(&cfg.Store, "store", envOr(e, "FIELDHUB_STORE", ""), storeUsage)
	fs.BoolVar(&cfg.Demo, "demo", envOr(e, "FIELDHUB_DEMO", "") == "1" || envOr(e, "FIELDHUB_DEMO", "") == "true", "create demo devices on first start and run them (env FIELDHUB_DEMO=1)")
	fs.StringVar(&cfg.Hostname, "hostname", envOr(e, "FIELDHUB_HOSTNAME", ""), "host name devices dial; goes into connection strings and the TLS certificate (env FIELDHUB_HOSTNAME)")
	fs.StringVar(&cfg.LogLevel, "log-level", envOr(e, "FIELDHUB_LOG_LEVEL", "info"), "debug, info, warn or error (env FIELDHUB_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", envOr(e, "FIELDHUB_LOG_FORMAT", "text"), logFormatUsage)
	fs.StringVar(&cfg.ClockURL, "clock-url", envOr(e, "FIELDHUB_CLOCK_URL", ""), "compare the clock with the HTTP Date of this URL at start and warn when they differ by over a minute; SAS tokens depend on it (env FIELDHUB_CLOCK_URL)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt-addr", envOr(e, "FIELDHUB_MQTT_ADDR", ":8883"), "MQTT over TLS device endpoint; empty turns MQTT off (env FIELDHUB_MQTT_ADDR)")
	fs.StringVar(&cfg.MQTTPlainAddr, "mqtt-plain-addr", envOr(e, "FIELDHUB_MQTT_PLAIN_ADDR", ""), "also serve MQTT without TLS here; loopback addresses only (env FIELDHUB_MQTT_PLAIN_ADDR)")
	memLimit := fs.String("memory-limit", envOr(e, "FIELDHUB_MEMORY_LIMIT", strconv.Itoa(app.DefaultMemoryLimitMiB)), "soft limit of the hub's Go memory in MiB: the collector works harder rather than let the heap pass it, as long as live data leaves a quarter free (beyond, it rises with live data, a quarter of it free and more as live data grows, up to Go's default goal); 0 is off; GOMEMLIMIT, when set, wins (env FIELDHUB_MEMORY_LIMIT)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", envOr(e, "FIELDHUB_METRICS_ADDR", ""), "also serve Prometheus metrics at /metrics here without sign-in, for a scraper on this machine; loopback addresses only; off when empty (env FIELDHUB_METRICS_ADDR)")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", envOr(e, "FIELDHUB_PPROF_ADDR", ""), "serve Go's CPU and memory profiles (net/http/pprof) here, for diagnosing performance; loopback addresses only; off when empty (env FIELDHUB_PPROF_ADDR)")
	fs.StringVar(&cfg.DeviceAddr, "device-addr", envOr(e, "FIELDHUB_DEVICE_ADDR", ":8443"), "HTTPS device endpoint (Azure IoT Hub device API); :443 lets the SDKs' HTTP transport connect (env FIELDHUB_DEVICE_ADDR)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", envOr(e, "FIELDHUB_TLS_CERT", ""), "PEM certificate chain of the device endpoints; default: issued by a CA generated in <data>/tls (env FIELDHUB_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", envOr(e, "FIELDHUB_TLS_KEY", ""), "PEM private key for --tls-cert (env FIELDHUB_TLS_KEY)")
	keep, err := envDuration(e, "FIELDHUB_RETENTION", 7*24*time.Hour)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.Retention, "retention", keep, "how long raw readings are kept, e.g. 720h for 30 days; older ranges chart from the rollups (env FIELDHUB_RETENTION)")
	msgKeep, err := envDuration(e, "FIELDHUB_MESSAGE_RETENTION", 0)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.MessageRetention, "message-retention", msgKeep, "how long the message log (each message whole, as the device sent it) is kept; default: as --retention (env FIELDHUB_MESSAGE_RETENTION)")
	minuteKeep, err := envDuration(e, "FIELDHUB_MINUTE_ROLLUP_RETENTION", telemetry.DefaultMinuteRetention)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.MinuteRollupRetention, "minute-rollup-retention", minuteKeep, "how long 1-minute min/max/avg/count of every metric are kept, e.g. 2160h for 90 days (env FIELDHUB_MINUTE_ROLLUP_RETENTION)")
	hourKeep, err := envDuration(e, "FIELDHUB_HOUR_ROLLUP_RETENTION", telemetry.DefaultHourRetention)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.HourRollupRetention, "hour-rollup-retention", hourKeep, "how long 1-hour min/max/avg/count of every metric are kept, e.g. 17520h for 2 years (env FIELDHUB_HOUR_ROLLUP_RETENTION)")
	msgRate := fs.String("device-msg-rate", envOr(e, "FIELDHUB_DEVICE_MSG_RATE", strconv.Itoa(quota.DefaultMessageRate)), "device-to-cloud messages a second each device may send; over it HTTPS answers 429 and MQTT reads the device no faster; 0 is unlimited (env FIELDHUB_DEVICE_MSG_RATE)")
	msgBurst := fs.String("device-msg-burst", envOr(e, "FIELDHUB_DEVICE_MSG_BURST", "0"), "messages a device may send at once after a quiet spell; 0 is twice --device-msg-rate (env FIELDHUB_DEVICE_MSG_BURST)")
	connectRate := fs.String("device-connect-rate", envOr(e, "FIELDHUB_DEVICE_CONNECT_RATE", strconv.Itoa(quota.DefaultConnectRate)), "MQTT connections a second each device may open, in bursts of 10; over it CONNACK 3; 0 is unlimited (env FIELDHUB_DEVICE_CONNECT_RATE)")
	auditRetention, err := envDuration(e, "FIELDHUB_AUDIT_RETENTION", retention.DefaultAuditRetention)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.AuditRetention, "audit-retention", auditRetention, "how long audit log entries are kept, e.g. 2160h for 90 days; expired sessions are deleted with them (env FIELDHUB_AUDIT_RETENTION)")
	alertRetention, err := envDuration(e, "FIELDHUB_ALERT_RETENTION", 90*24*time.Hour)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.AlertRetention, "alert-retention", alertRetention, "how long cleared alerts and webhook delivery logs are kept, e.g. 2160h for 90 days (env FIELDHUB_ALERT_RETENTION)")
	fs.BoolVar(&cfg.WebhookAllowLoopback, "webhook-allow-loopback", envOr(e, "FIELDHUB_WEBHOOK_ALLOW_LOOPBACK", "") == "1" || envOr(e, "FIELDHUB_WEBHOOK_ALLOW_LOOPBACK", "") == "true", "let webhooks reach receivers on loopback addresses (this machine); link-local addresses are never dialled (env FIELDHUB_WEBHOOK_ALLOW_LOOPBACK=1)")
	fs.BoolVar(&cfg.DashboardTLS, "dashboard-tls", envOr(e, "FIELDHUB_DASHBOARD_TLS", "") == "1" || envOr(e, "FIELDHUB_DASHBOARD_TLS", "") == "true", "serve the dashboard and API over HTTPS with the device endpoints' certificate (env FIELDHUB_DASHBOARD_TLS=1)")
	busURLs := fs.String("bus", envOr(e, "FIELDHUB_BUS", ""), "NATS servers joining this instance to the others of a cluster, comma-separated (nats://host:4222,…); empty: one instance (env FIELDHUB_BUS)")
	fs.StringVar(&cfg.Node, "node", envOr(e, "FIELDHUB_NODE", ""), "this instance's name in a cluster: letters, digits, '-' and '_'; default: host name and dashboard port (env FIELDHUB_NODE)")
	lease, err := envDuration(e, "FIELDHUB_LEASE", 15*time.Second)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.Lease, "lease", lease, "with --store: how long this instance's lease in the database lasts unrenewed; when it runs out, another instance takes its devices' connections back (env FIELDHUB_LEASE)")
	finishListenFlags := listenFlags(fs, e, &cfg)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return cfg, err
	}
	if err := finishListenFlags(); err != nil {
		return cfg, err
	}
	if cfg.DeviceQuota, err = parseDeviceQuota(*msgRate, *msgBurst, *connectRate); err != nil {
		return cfg, err
	}
	if cfg.MemoryLimitMiB, err = strconv.Atoi(*memLimit); err != nil || cfg.MemoryLimitMiB < 0 {
		return cfg, usagef("serve: --memory-limit %q: want a whole number of MiB, 0 for Go's defaults", *memLimit)
	}
	if len(pos) != 0 {
		return cfg, usagef("serve takes no arguments, got %q", pos)
	}
	if _, _, err := net.SplitHostPort(cfg.DeviceAddr); err != nil {
		return cfg, usagef("serve: --device-addr %q is not host:port: %v", cfg.DeviceAddr, err)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return cfg, usagef("serve: --tls-cert and --tls-key go together")
	}
	if cfg.Retention <= 0 {
		return cfg, usagef("serve: --retention must be positive, got %s", cfg.Retention)
	}
	if cfg.MessageRetention < 0 {
		return cfg, usagef("serve: --message-retention must be positive, got %s", cfg.MessageRetention)
	}
	if cfg.MinuteRollupRetention <= 0 || cfg.HourRollupRetention <= 0 {
		return cfg, usagef("serve: --minute-rollup-retention and --hour-rollup-retention must be positive, got %s and %s", cfg.MinuteRollupRetention, cfg.HourRollupRetention)
	}
	if cfg.AuditRetention <= 0 {
		return cfg, usagef("serve: --audit-retention must be positive, got %s", cfg.AuditRetention)
	}
	if cfg.AlertRetention <= 0 {
		return cfg, usagef("serve: --alert-retention must be positive, got %s", cfg.AlertRetention)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, usagef("serve: --addr %q is not host:port: %v", cfg.Addr, err)
	}
	if _, _, err := net.SplitHostPort(cfg.MQTTAddr); cfg.MQTTAddr != "" && err != nil {
		return cfg, usagef("serve: --mqtt-addr %q is not host:port: %v", cfg.MQTTAddr, err)
	}
	if cfg.MetricsAddr != "" && !app.IsLoopback(cfg.MetricsAddr) {
		return cfg, usagef("serve: --metrics-addr %q: metrics are served without sign-in on a loopback host:port only (127.0.0.1, ::1 or localhost); remote scrapers use /metrics on --addr with an API token", cfg.MetricsAddr)
	}
	if cfg.PprofAddr != "" && !app.IsLoopback(cfg.PprofAddr) {
		return cfg, usagef("serve: --pprof-addr %q: profiles are served on a loopback host:port only (127.0.0.1, ::1 or localhost)", cfg.PprofAddr)
	}
	if cfg.Lease < time.Second || cfg.Lease > 10*time.Minute {
		return cfg, usagef("serve: --lease %s: want 1s to 10m", cfg.Lease)
	}
	if cfg.Bus, err = parseBusURLs(*busURLs); err != nil {
		return cfg, err
	}
	if cfg.Node != "" {
		if err := bus.CheckNode(cfg.Node); err != nil {
			return cfg, usagef("serve: --node: %v", err)
		}
	}
	if cfg.MQTTPlainAddr != "" {
		if err := mqtt.CheckPlainAddr(cfg.MQTTPlainAddr); err != nil {
			return cfg, usagef("serve: --mqtt-plain-addr: %v", err)
		}
	}
	return cfg, nil
}

// parseBusURLs reads --bus: NATS URLs separated by commas.
func parseBusURLs(v string) ([]string, error) {
	var urls []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return nil, usagef("serve: --bus %q is not a NATS server URL such as nats://127.0.0.1:4222", s)
		}
		urls = append(urls, s)
	}
	return urls, nil
}

// envDuration reads a duration from the environment, def when unset.
func envDuration(e env, key string, def time.Duration) (time.Duration, error) {
	v := e.getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("serve: %s %q is not a duration such as 2160h: %v", key, v, err)
	}
	return d, nil
}

// parseDeviceQuota reads the --device-* budget flags.
func parseDeviceQuota(msgRate, msgBurst, connectRate string) (quota.Config, error) {
	var q quota.Config
	rate, err := strconv.ParseFloat(msgRate, 64)
	if err != nil || rate < 0 || math.IsInf(rate, 0) {
		return q, usagef("serve: --device-msg-rate %q: want messages a second, a number from 0 (unlimited) up", msgRate)
	}
	burst, err := strconv.Atoi(msgBurst)
	if err != nil || burst < 0 {
		return q, usagef("serve: --device-msg-burst %q: want a whole number of messages, 0 for twice the rate", msgBurst)
	}
	connects, err := strconv.ParseFloat(connectRate, 64)
	if err != nil || connects < 0 || math.IsInf(connects, 0) {
		return q, usagef("serve: --device-connect-rate %q: want connections a second, a number from 0 (unlimited) up", connectRate)
	}
	return quota.Config{MessageRate: rate, MessageBurst: burst, ConnectRate: connects}, nil
}

// runServe parses serve's flags into an app.Config and runs the hub until
// ctx ends; app.App owns the start and shutdown order.
func runServe(ctx context.Context, e env, args []string) error {
	cfg, err := parseServe(e, args)
	if err != nil {
		return err
	}
	log, err := newLogger(e.stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, e, log)
}

// serve runs the hub configured by cfg until ctx ends or a server fails.
func serve(ctx context.Context, cfg serveConfig, e env, log *slog.Logger) error {
	build := currentBuild()
	c := cfg.Config
	c.Logger, c.Version, c.Commit = log, build.Version, build.Commit
	// The banner is for people; JSON logs stay one object a line (the
	// first admin password is logged either way).
	if cfg.LogFormat != "json" {
		c.Banner = e.stderr
	}
	hub, err := app.New(ctx, c)
	if err != nil {
		return err
	}
	err = hub.Run(ctx)
	hub.Close() // logs what fails to stop; the hub is down either way
	return err
}
