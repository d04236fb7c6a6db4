package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"fieldhub/auth"
	cmds "fieldhub/commands"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/live"
	"fieldhub/mqtt"
	"fieldhub/netlimit"
	"fieldhub/quota"
	"fieldhub/registry"
	"fieldhub/retention"
	"fieldhub/static"
	"fieldhub/storage"
	"fieldhub/telemetry"
	telsqlite "fieldhub/telemetry/sqlite"
)

// serveConfig is every setting of `fieldhub serve`, parsed once and passed down.
type serveConfig struct {
	Addr     string
	DataDir  string
	Demo     bool
	Hostname string
	LogLevel string
	// LogFormat is text or json.
	LogFormat string
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
	// Retention is how long telemetry is kept.
	Retention time.Duration
	// DeviceQuota is each device's budget: messages a second (with a burst)
	// and MQTT connections a second; a rate of 0 is unlimited.
	DeviceQuota quota.Config
	// AuditRetention is how long audit log entries are kept.
	AuditRetention time.Duration
	// DashboardTLS serves the dashboard over HTTPS with the device
	// endpoints' certificate.
	DashboardTLS bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For counts.
	TrustedProxies []netip.Prefix
	// Listen is the listeners' timeouts and connection caps (listeners.go).
	Listen listenConfig
}

func parseServe(e env, args []string) (serveConfig, error) { return parseServeAs(e, "serve", args) }

// parseServeAs parses serve's flags for the command name (doctor takes them too).
func parseServeAs(e env, name string, args []string) (serveConfig, error) {
	cfg := serveConfig{Listen: defaultListenConfig()}
	fs := newFlagSet(e, name, name+" [flags]")
	fs.StringVar(&cfg.Addr, "addr", envOr(e, "FIELDHUB_ADDR", "127.0.0.1:8080"), "dashboard and API listen address (env FIELDHUB_ADDR)")
	fs.StringVar(&cfg.DataDir, "data", envOr(e, "FIELDHUB_DATA", "./data"), "data folder (env FIELDHUB_DATA)")
	fs.BoolVar(&cfg.Demo, "demo", envOr(e, "FIELDHUB_DEMO", "") == "1" || envOr(e, "FIELDHUB_DEMO", "") == "true", "create demo devices on first start and run them (env FIELDHUB_DEMO=1)")
	fs.StringVar(&cfg.Hostname, "hostname", envOr(e, "FIELDHUB_HOSTNAME", ""), "host name devices dial; goes into connection strings and the TLS certificate (env FIELDHUB_HOSTNAME)")
	fs.StringVar(&cfg.LogLevel, "log-level", envOr(e, "FIELDHUB_LOG_LEVEL", "info"), "debug, info, warn or error (env FIELDHUB_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", envOr(e, "FIELDHUB_LOG_FORMAT", "text"), logFormatUsage)
	fs.StringVar(&cfg.ClockURL, "clock-url", envOr(e, "FIELDHUB_CLOCK_URL", ""), "compare the clock with the HTTP Date of this URL at start and warn when they differ by over a minute; SAS tokens depend on it (env FIELDHUB_CLOCK_URL)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt-addr", envOr(e, "FIELDHUB_MQTT_ADDR", ":8883"), "MQTT over TLS device endpoint; empty turns MQTT off (env FIELDHUB_MQTT_ADDR)")
	fs.StringVar(&cfg.MQTTPlainAddr, "mqtt-plain-addr", envOr(e, "FIELDHUB_MQTT_PLAIN_ADDR", ""), "also serve MQTT without TLS here; loopback addresses only (env FIELDHUB_MQTT_PLAIN_ADDR)")
	fs.StringVar(&cfg.DeviceAddr, "device-addr", envOr(e, "FIELDHUB_DEVICE_ADDR", ":8443"), "HTTPS device endpoint (Azure IoT Hub device API); :443 lets the SDKs' HTTP transport connect (env FIELDHUB_DEVICE_ADDR)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", envOr(e, "FIELDHUB_TLS_CERT", ""), "PEM certificate chain of the device endpoints; default: issued by a CA generated in <data>/tls (env FIELDHUB_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", envOr(e, "FIELDHUB_TLS_KEY", ""), "PEM private key for --tls-cert (env FIELDHUB_TLS_KEY)")
	keep, err := envDuration(e, "FIELDHUB_RETENTION", 7*24*time.Hour)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.Retention, "retention", keep, "how long device messages and readings are kept, e.g. 720h for 30 days (env FIELDHUB_RETENTION)")
	msgRate := fs.String("device-msg-rate", envOr(e, "FIELDHUB_DEVICE_MSG_RATE", strconv.Itoa(quota.DefaultMessageRate)), "device-to-cloud messages a second each device may send; over it HTTPS answers 429 and MQTT reads the device no faster; 0 is unlimited (env FIELDHUB_DEVICE_MSG_RATE)")
	msgBurst := fs.String("device-msg-burst", envOr(e, "FIELDHUB_DEVICE_MSG_BURST", "0"), "messages a device may send at once after a quiet spell; 0 is twice --device-msg-rate (env FIELDHUB_DEVICE_MSG_BURST)")
	connectRate := fs.String("device-connect-rate", envOr(e, "FIELDHUB_DEVICE_CONNECT_RATE", strconv.Itoa(quota.DefaultConnectRate)), "MQTT connections a second each device may open, in bursts of 10; over it CONNACK 3; 0 is unlimited (env FIELDHUB_DEVICE_CONNECT_RATE)")
	auditRetention, err := envDuration(e, "FIELDHUB_AUDIT_RETENTION", retention.DefaultAuditRetention)
	if err != nil {
		return cfg, err
	}
	fs.DurationVar(&cfg.AuditRetention, "audit-retention", auditRetention, "how long audit log entries are kept, e.g. 2160h for 90 days; expired sessions are deleted with them (env FIELDHUB_AUDIT_RETENTION)")
	fs.BoolVar(&cfg.DashboardTLS, "dashboard-tls", envOr(e, "FIELDHUB_DASHBOARD_TLS", "") == "1" || envOr(e, "FIELDHUB_DASHBOARD_TLS", "") == "true", "serve the dashboard and API over HTTPS with the device endpoints' certificate (env FIELDHUB_DASHBOARD_TLS=1)")
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
	if cfg.AuditRetention <= 0 {
		return cfg, usagef("serve: --audit-retention must be positive, got %s", cfg.AuditRetention)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, usagef("serve: --addr %q is not host:port: %v", cfg.Addr, err)
	}
	if _, _, err := net.SplitHostPort(cfg.MQTTAddr); cfg.MQTTAddr != "" && err != nil {
		return cfg, usagef("serve: --mqtt-addr %q is not host:port: %v", cfg.MQTTAddr, err)
	}
	if cfg.MQTTPlainAddr != "" {
		if err := mqtt.CheckPlainAddr(cfg.MQTTPlainAddr); err != nil {
			return cfg, usagef("serve: --mqtt-plain-addr: %v", err)
		}
	}
	return cfg, nil
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

// serve runs the hub until ctx is cancelled, then shuts down in reverse order of start.
func serve(ctx context.Context, cfg serveConfig, e env, log *slog.Logger) error {
	// The lock is released last, after the database closed.
	lock, err := lockDataDir(cfg.DataDir, "fieldhub serve")
	if err != nil {
		return err
	}
	defer lock.Release()
	caps, err := listenerCaps(cfg.Listen, log)
	if err != nil {
		return err
	}
	store, err := openDB(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close database", "err", err)
		}
	}()
	if err := store.ResetConnections(ctx); err != nil {
		return err
	}
	firstPassword, err := ensureAdmin(ctx, store, log)
	if err != nil {
		return err
	}
	// Old audit entries and expired sessions go in the background; the
	// pruner stops (deferred) before the database closes.
	pruner := retention.New(retention.Config{Store: store, AuditRetention: cfg.AuditRetention, Logger: log})
	pruner.Start(ctx)
	defer pruner.Close()
	host := cfg.Hostname
	if host == "" {
		host = "localhost"
	}
	// The device listener opens first so that the recorded host carries its real port.
	cert, err := serverCertificate(cfg, log)
	if err != nil {
		return err
	}
	// What doctor would say, with the certificate now in place.
	logStartupChecks(ctx, cfg, log)
	deviceLn, err := net.Listen("tcp", cfg.DeviceAddr)
	if err != nil {
		return fmt.Errorf("device endpoint: listen on %s: %w", cfg.DeviceAddr, err)
	}
	deviceLn = netlimit.New("device", caps.DeviceConns, log).Wrap(deviceLn)
	defer deviceLn.Close()

	assets, err := static.New()
	if err != nil {
		return fmt.Errorf("load front-end assets: %w", err)
	}
	// Live streams close after the database's deferred Close is registered,
	// so they end first; they also end as soon as HTTP shutdown begins, since
	// an open stream would otherwise hold srv.Shutdown until its timeout.
	hub := live.New(live.Options{Logger: log, Counts: store.FleetCounts})
	defer hub.Close()
	// Writers report every commit here; /readyz, the pages and the live
	// streams show a storage fault until a commit succeeds again.
	health := storage.NewHealth(log, db.FaultKind, func(st storage.Status) { hub.PublishStorage(st) })
	// Devices online right now go offline on open pages when they fall silent.
	online, _, err := store.Devices(ctx, db.DeviceFilter{Status: db.StatusOnline})
	if err != nil {
		return err
	}
	for _, d := range online {
		hub.Remember(d.DeviceID, d.LastActivity)
	}
	// Command services. The sweeper stops (deferred) before the live hub and the
	// database close. The MQTT transport plugs into them: cloud.OnQueued,
	// twins.OnDesired, methods.SetTransport.
	cloud := cmds.NewCloudQueue(cmds.CloudQueueConfig{Store: store, Publisher: hub, Logger: log})
	cloud.Start(ctx)
	defer cloud.Close()
	methods := cmds.NewInvoker(cmds.InvokerConfig{Store: store, Publisher: hub, Logger: log})
	twins := cmds.NewTwins(cmds.TwinsConfig{Store: store, Publisher: hub, Logger: log})
	// The telemetry store rebuilds the time series it keeps in memory from
	// the messages committed after its last checkpoint. Ingest starts before
	// the listeners and drains (deferred) after they stopped, before the
	// live hub and the database close.
	tel, err := telemetry.Open(ctx, telsqlite.New(store), telemetry.Options{Logger: log})
	if err != nil {
		return err
	}
	pipeline := ingest.New(tel, hub, ingest.Options{Logger: log, Retention: cfg.Retention, Health: health})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pipeline.Close(ctx); err != nil {
			log.Error("drain ingest", "err", err)
		}
	}()
	var sasHosts []string
	if cfg.Hostname != "" {
		sasHosts = []string{cfg.Hostname}
	}
	// Per-device budgets, shared by both device endpoints.
	deviceQuota := quota.New(cfg.DeviceQuota)
	// The device registry: every device change, and device authentication
	// for both device endpoints. The broker plugs in to have connections
	// rechecked after changes (SetSessions).
	devices := registry.New(registry.Config{Store: store, Audit: store, Live: hub, Hostnames: sasHosts, Logger: log})
	// MQTT devices use the same certificate. The broker closes (deferred)
	// before the pipeline drains: Close waits for publishes in flight.
	var mqttWS http.Handler
	var mqttDemoAddr string // where the demo's MQTT devices connect; "" for none
	if cfg.MQTTAddr != "" || cfg.MQTTPlainAddr != "" {
		broker, err := mqtt.New(mqtt.Config{
			Addr: cfg.MQTTAddr, PlainAddr: cfg.MQTTPlainAddr,
			TLS:   &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			Store: store, Devices: devices, Ingest: pipeline, Presence: hub, CloudMessages: cloud, Twins: twins,
			Logger: log, Health: health,
			Quota:          deviceQuota,
			ConnectTimeout: caps.MQTTConnect, Limits: caps.MQTTConns,
		})
		if err != nil {
			return err
		}
		if err := broker.Start(); err != nil {
			broker.Close()
			return err
		}
		defer broker.Close()
		methods.SetTransport(broker)
		devices.SetSessions(broker)
		mqttWS, mqttDemoAddr = broker.WebSocketHandler(), broker.Addr()
		log.Info("MQTT device endpoint is listening", "addr", broker.Addr(), "plain", broker.PlainAddr())
	}
	// Connection strings carry the host (and port) devices dial; record it so the
	// CLI prints the same strings as the dashboard.
	deviceHost := connectionHost(host, deviceLn.Addr().String(), mqttDemoAddr)
	if err := store.SetSetting(ctx, db.SettingDeviceHost, deviceHost); err != nil {
		return err
	}
	router, server := handlers.New(handlers.Config{Store: store, Devices: devices, Assets: assets, Logger: log, DeviceHost: deviceHost, Live: hub,
		CloudMessages: cloud, Methods: methods, Twins: twins,
		Ingest: pipeline, Telemetry: tel, SeparateDeviceListener: !isLoopback(cfg.Addr),
		MQTTWebSocket: mqttWS,
		DeviceQuota:   deviceQuota, SecureCookies: cfg.DashboardTLS, TrustedProxies: cfg.TrustedProxies,
		Health: health})
	// TLS handshake noise from scanners goes to the debug log.
	deviceSrv := caps.Device.Server(server.DeviceRouter(), slog.NewLogLogger(log.Handler(), slog.LevelDebug))
	// Client certificates are asked for, not required: X.509 devices present
	// one, SAS devices none (handlers/device_auth.go checks them).
	deviceSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	// Properties travel in headers; Go's server answers 431 beyond this.
	deviceSrv.MaxHeaderBytes = handlers.MaxDeviceHeaderBytes
	deviceErrc := make(chan error, 1)
	go func() { deviceErrc <- deviceSrv.ServeTLS(deviceLn, "", "") }()
	log.Info("device endpoint (Azure IoT Hub HTTPS API) is listening", "addr", deviceLn.Addr().String(), "hostname", deviceHost)
	// The demo's simulated devices send through the device listener like
	// real ones. They stop first on shutdown (stopDemo below), before the
	// listeners close and the pipeline drains; the defer covers early returns.
	stopDemo := func() {}
	if cfg.Demo {
		demoURL, demoClient, err := demoEndpoint(deviceLn.Addr(), host, cert)
		if err != nil {
			return err
		}
		if stopDemo, err = startDemo(ctx, store, devices, demoURL, deviceHost, demoClient, mqttDemoAddr, log); err != nil {
			return err
		}
	}
	defer stopDemo()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	ln = netlimit.New("dashboard", caps.DashboardConns, log).Wrap(ln)
	errLevel := slog.LevelWarn
	if cfg.DashboardTLS {
		errLevel = slog.LevelDebug // failed handshakes: scanners, untrusted certificates
	}
	srv := caps.Dashboard.Server(router, slog.NewLogLogger(log.Handler(), errLevel))
	srv.RegisterOnShutdown(hub.Close)
	errc := make(chan error, 1)
	scheme := "http"
	if cfg.DashboardTLS {
		scheme = "https"
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	warnPlainDashboard(log, cfg.Addr, cfg.DashboardTLS)
	url := scheme + "://" + displayAddr(ln.Addr().String())
	build := currentBuild()
	log.Info("fieldhub is running", "url", url, "data", cfg.DataDir, "version", build.Version, "commit", build.Commit)
	// The banner is for people; JSON logs stay one object a line (the
	// first admin password is logged either way).
	if cfg.LogFormat != "json" {
		fmt.Fprintf(e.stderr, "\n  Fieldhub dashboard: %s\n", url)
		if firstPassword != "" {
			fmt.Fprintf(e.stderr, "  Sign in as admin with password %s (shown only now)\n\n", firstPassword)
		} else {
			fmt.Fprintf(e.stderr, "  Sign in with your user; to reset admin's password: fieldhub user passwd --data %s admin\n\n", cfg.DataDir)
		}
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			deviceSrv.Close()
			return fmt.Errorf("dashboard server: %w", err)
		}
	case err := <-deviceErrc:
		if !errors.Is(err, http.ErrServerClosed) {
			srv.Close()
			return fmt.Errorf("device endpoint: %w", err)
		}
	}
	stopDemo()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := deviceSrv.Shutdown(shutdownCtx); err != nil {
		log.Error("stop device endpoint", "err", err)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error("stop dashboard server", "err", err)
	}
	return nil
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// ensureAdmin creates user admin with a random password when there are no users,
// and returns the password so it can be shown once: it is stored only as a hash.
func ensureAdmin(ctx context.Context, store *db.DB, log *slog.Logger) (string, error) {
	n, err := store.CountUsers(ctx)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return "", nil
	}
	pw := auth.NewPassword()
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return "", err
	}
	if _, err := store.CreateUser(ctx, "admin", hash, db.RoleAdmin); err != nil {
		return "", fmt.Errorf("create first admin: %w", err)
	}
	log.Info("created the first user; username: admin, admin password: " + pw)
	return pw, nil
}
