package app

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/alerting"
	"fieldhub/auth"
	"fieldhub/bus"
	"fieldhub/cluster"
	"fieldhub/commands"
	"fieldhub/datadir"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/jobs"
	"fieldhub/live"
	"fieldhub/metrics"
	"fieldhub/mqtt"
	"fieldhub/netlimit"
	"fieldhub/policy"
	"fieldhub/quota"
	"fieldhub/registry"
	"fieldhub/retention"
	"fieldhub/static"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// parts are what the start built, each field set by the step that builds it.
type parts struct {
	caps          ListenConfig
	be            backend
	firstPassword string
	cert          tls.Certificate
	deviceLn      net.Listener
	node          string
	bus           *bus.Bus
	hub           *live.Hub
	health        *storage.Health
	cloud         *commands.CloudQueue
	methods       *commands.Invoker
	twins         *commands.Twins
	jobs          *jobs.Service
	telemetry     *telemetry.Store
	alerts        *alerting.Service
	pipeline      *ingest.Pipeline
	devices       *registry.Registry
	quota         *quota.Devices
	broker        atomic.Pointer[mqtt.Broker] // nil without MQTT; read by the cluster's lease loop
	mqttWS        http.Handler                // nil without MQTT
	mqttConns     handlers.Connections        // nil without MQTT
	mqttAddr      string                      // where the demo's MQTT devices connect; "" for none
	deviceHost    string
	router        *echo.Echo // the dashboard's
	url           string
	metrics       http.Handler // the Prometheus exposition
	metricsAddr   string       // where --metrics-addr listens; "" when off
}

// start runs the steps in the one start order (the package doc tells it);
// each registers how its part stops.
func (a *App) start(ctx context.Context) error {
	for _, step := range []func(context.Context) error{
		a.lockDataFolder,
		a.servePprof,
		a.governMemory,
		a.openStorage,
		a.startPruner,
		a.openDeviceListener,
		a.openBus,
		a.startLive,
		a.startAlerts,
		a.startCommands,
		a.joinCluster,
		a.startIngest,
		a.startBroker,
		a.startJobs,
		a.serveDevices,
		a.serveDashboard,
		a.serveMetrics,
		a.startDemo,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	a.printBanner()
	return nil
}

// lockDataFolder takes the data folder (released last, after the database
// closed) and works out the connection caps within the file limit.
func (a *App) lockDataFolder(context.Context) error {
	lock, err := datadir.Take(a.cfg.DataDir, "fieldhub serve")
	if err != nil {
		return err
	}
	a.onStop("data folder lock", quickStop, func(context.Context) error { lock.Release(); return nil })
	a.caps, err = listenerCaps(a.cfg.Listen, a.log)
	return err
}

// openStorage opens the store and prepares it for this process.
func (a *App) openStorage(ctx context.Context) error {
	// The node names this instance in the store's connection state (and,
	// on a shared store, in what else it keeps per instance).
	var err error
	if a.node, err = nodeName(a.cfg); err != nil {
		return err
	}
	be, err := openBackend(ctx, a.cfg, a.node)
	if err != nil {
		return err
	}
	a.be = be
	a.onStop("database", quickStop, func(context.Context) error { return be.store.Close() })
	// No connection survives a restart; in a cluster, the other
	// instances' connections stay, and this one's are taken back as it
	// joins (joinCluster), which tells the others.
	reset := be.store.ResetConnections
	if len(a.cfg.Bus) > 0 {
		reset = func(ctx context.Context) error { return be.store.ResetNodeConnections(ctx, a.node) }
	}
	if be.cluster != nil {
		reset = nil
	}
	if reset != nil {
		if err := reset(ctx); err != nil {
			return err
		}
	}
	a.firstPassword, err = ensureAdmin(ctx, be.store, a.log)
	return err
}

// startPruner deletes old audit entries and expired sessions in the background.
func (a *App) startPruner(ctx context.Context) error {
	pruner := retention.New(retention.Config{Store: a.be.store, AuditRetention: a.cfg.AuditRetention, Logger: a.log})
	pruner.Start(ctx)
	a.onStop("retention pruner", quickStop, func(context.Context) error { pruner.Close(); return nil })
	return nil
}

// openDeviceListener binds the device endpoint before anything serves, so
// that the recorded host carries its real port.
func (a *App) openDeviceListener(ctx context.Context) error {
	var err error
	if a.cert, err = serverCertificate(a.cfg, a.log); err != nil {
		return err
	}
	// What doctor would say, with the certificate now in place.
	logStartupChecks(ctx, a.cfg, a.log)
	ln, err := net.Listen("tcp", a.cfg.DeviceAddr)
	if err != nil {
		return fmt.Errorf("device endpoint: listen on %s: %w", a.cfg.DeviceAddr, err)
	}
	a.deviceLn = netlimit.New("device", a.caps.DeviceConns, a.log).Wrap(ln)
	// Closed already by the server's Shutdown once it served.
	a.onStop("device listener", quickStop, func(context.Context) error { _ = a.deviceLn.Close(); return nil })
	return nil
}

// openBus connects to the other instances of a cluster over NATS (alone,
// the bus is this process); it closes after the parts that publish on it.
func (a *App) openBus(ctx context.Context) error {
	b, err := bus.Open(ctx, bus.Config{URLs: a.cfg.Bus, Node: a.node, Store: a.be.store, Logger: a.log})
	if err != nil {
		return err
	}
	a.bus = b
	a.onStop("bus", quickStop, func(context.Context) error { return b.Close() })
	return nil
}

// startLive builds the live hub and the storage health that reports on it.
func (a *App) startLive(ctx context.Context) error {
	store := a.be.store
	opt := live.Options{Logger: a.log, Counts: store.FleetCounts}
	if a.bus.Clustered() {
		opt.Relay = a.bus
	}
	// The dashboard server's shutdown closes the hub too (serveDashboard):
	// an open stream would otherwise hold the shutdown until its bound.
	a.hub = live.New(opt)
	a.onStop("live streams", quickStop, func(context.Context) error { a.hub.Close(); return nil })
	if err := a.bus.AttachHub(a.hub); err != nil {
		return err
	}
	// Writers report every commit here; /readyz, the pages and the live
	// streams show a storage fault until a commit succeeds again.
	a.health = storage.NewHealth(a.log, a.be.faultKind, a.hub.PublishStorage)
	// Devices online right now go offline on open pages when they fall silent.
	online, _, err := store.Devices(ctx, db.DeviceFilter{Status: db.StatusOnline})
	if err != nil {
		return err
	}
	for _, d := range online {
		a.hub.Remember(d.DeviceID, d.LastActivity)
		if d.Connected {
			a.hub.RememberPeer(d.DeviceID) // connected to another instance
		}
	}
	return nil
}

// startCommands builds the command services and runs the cloud-to-device
// sweeper. The MQTT transport plugs into them (startBroker).
func (a *App) startCommands(ctx context.Context) error {
	store := a.be.store
	a.cloud = commands.NewCloudQueue(commands.CloudQueueConfig{Store: store, Publisher: a.hub, Logger: a.log})
	a.cloud.Start(ctx)
	a.onStop("cloud-to-device sweeper", quickStop, func(context.Context) error { a.cloud.Close(); return nil })
	a.methods = commands.NewInvoker(commands.InvokerConfig{Store: store, Publisher: a.hub, Logger: a.log})
	a.twins = commands.NewTwins(commands.TwinsConfig{Store: store, Publisher: twinPublisher{a.hub, a.alerts, time.Now}, Logger: a.log})
	a.methods.SetTransport(a.bus) // the MQTT broker, here or on another instance
	// Pushes to devices on other instances; the broker hears those for its own.
	unqueued := a.cloud.OnQueued(a.bus.CloudMessageQueued)
	undesired := a.twins.OnDesired(a.bus.DesiredChanged)
	a.onStop("pushes to other instances", quickStop, func(context.Context) error { unqueued(); undesired(); return nil })
	a.jobs = jobs.New(jobs.Config{Store: store, Methods: a.methods, Twins: a.twins, Cloud: a.cloud, Publisher: a.hub, Logger: a.log})
	return nil
}

// joinCluster takes this instance's lease in a shared store (PostgreSQL)
// and takes back lost instances' connections and telemetry (package
// cluster), before the broker takes connections: joining takes back this
// node's connections of its previous run. The lease is given up after
// ingest drained at shutdown.
func (a *App) joinCluster(ctx context.Context) error {
	if a.be.cluster == nil {
		return nil
	}
	m, err := cluster.Join(ctx, cluster.Config{
		Store: a.be.cluster, Node: a.node, Lease: a.cfg.Lease, Fold: a.be.fold, Logger: a.log,
		Reclaimed: func(r cluster.Reclaimed) {
			a.hub.Lost(r.Node, r.Devices)
			a.cloud.Changed(r.CloudMessages)
		},
		LeaseLost: func() {
			if b := a.broker.Load(); b != nil {
				b.DisconnectAll("this instance was taken for lost by the cluster; reconnect")
			}
		},
	})
	if err != nil {
		return err
	}
	a.onStop("cluster lease", quickStop, m.Leave)
	return nil
}

// startJobs resumes stored jobs and runs new ones, once the MQTT transport
// reaches devices; running jobs go on after jobs.Config.ResumeDelay, so
// that devices have reconnected. It stops before the database closes;
// calls under way then are recorded as interrupted at the next start.
func (a *App) startJobs(ctx context.Context) error {
	if err := a.jobs.Start(ctx); err != nil {
		return err
	}
	a.onStop("jobs", quickStop, func(context.Context) error { a.jobs.Close(); return nil })
	return nil
}

// startIngest opens the telemetry store, which rebuilds the time series it
// keeps in memory from the messages committed after its last checkpoint,
// and the pipeline that writes to it; the pipeline drains on stop, after
// every listener stopped.
func (a *App) startIngest(ctx context.Context) error {
	keep := telemetry.Retention{Messages: a.cfg.MessageRetention, Raw: a.cfg.Retention,
		Minutes: a.cfg.MinuteRollupRetention, Hours: a.cfg.HourRollupRetention}
	if keep.Messages == 0 {
		keep.Messages = keep.Raw
	}
	tel, err := telemetry.Open(ctx, a.be.telemetry, telemetry.Options{Logger: a.log, Retention: keep})
	if err != nil {
		return err
	}
	a.telemetry = tel
	a.pipeline = ingest.New(tel, committed{a.hub, a.alerts}, ingest.Options{Logger: a.log, Health: a.health})
	a.onStop("ingest", drainStop, a.pipeline.Close)
	return nil
}

// startBroker builds the device registry, which every device endpoint
// authenticates through, and the MQTT broker with the device endpoints'
// certificate.
func (a *App) startBroker(ctx context.Context) error {
	secret, err := querySecret(ctx, a.be.store)
	if err != nil {
		return err
	}
	var sasHosts []string
	if a.cfg.Hostname != "" {
		sasHosts = []string{a.cfg.Hostname}
	}
	a.quota = quota.New(a.cfg.DeviceQuota) // shared by both device endpoints
	a.devices = registry.New(registry.Config{Store: a.be.store, Audit: a.be.store, Live: a.hub, Watcher: a.alerts, Hostnames: sasHosts, Logger: a.log,
		QuerySecret: secret})
	if a.cfg.MQTTAddr == "" && a.cfg.MQTTPlainAddr == "" {
		return nil
	}
	broker, err := mqtt.New(mqtt.Config{
		Addr: a.cfg.MQTTAddr, PlainAddr: a.cfg.MQTTPlainAddr,
		TLS:   &tls.Config{Certificates: []tls.Certificate{a.cert}, MinVersion: tls.VersionTLS12},
		Store: a.be.store, Devices: a.devices, Ingest: a.pipeline, Presence: a.hub,
		CloudMessages: a.cloud, Twins: a.twins, Logger: a.log, Health: a.health, Quota: a.quota, Refusals: a.pipeline.Refusals(),
		ConnectTimeout: a.caps.MQTTConnect, Limits: a.caps.MQTTConns, Node: a.node, Cluster: a.bus,
	})
	if err != nil {
		return err
	}
	if err := broker.Start(); err != nil {
		broker.Close()
		return err
	}
	// Close waits for publishes in flight, so the pipeline drains after it.
	a.onStop("MQTT broker", serverStop, func(context.Context) error { broker.Close(); return nil })
	a.broker.Store(broker)
	if err := a.bus.AttachDevices(broker); err != nil {
		return err
	}
	a.devices.SetSessions(broker)
	a.mqttWS, a.mqttAddr = broker.WebSocketHandler(), broker.Addr()
	a.mqttConns = broker
	a.log.Info("MQTT device endpoint is listening", "addr", broker.Addr(), "plain", broker.PlainAddr())
	return nil
}

// serveDevices records the host devices dial, builds the handlers and
// serves the HTTPS device endpoint.
func (a *App) serveDevices(ctx context.Context) error {
	// Connection strings carry the host (and port) devices dial; recorded so
	// the CLI prints the same strings as the dashboard.
	a.deviceHost = connectionHost(a.host(), a.deviceLn.Addr().String(), a.mqttAddr)
	if err := a.be.store.SetSetting(ctx, db.SettingDeviceHost, a.deviceHost); err != nil {
		return err
	}
	endpoints, err := deviceEndpoints(a.cfg, a.host(), a.deviceLn.Addr().String(), a.mqttAddr, a.mqttWS != nil)
	if err != nil {
		return err
	}
	if err := a.be.store.SetSetting(ctx, db.SettingDeviceEndpoints, endpoints.String()); err != nil {
		return err
	}
	assets, err := static.New()
	if err != nil {
		return fmt.Errorf("load front-end assets: %w", err)
	}
	var hosts []string // the names service tokens may name, as device tokens
	if a.cfg.Hostname != "" {
		hosts = []string{a.cfg.Hostname}
	}
	policies := policy.New(policy.Config{Store: a.be.store, Hostnames: hosts, Logger: a.log})
	a.metrics = metrics.Handler(metrics.Sources{Ingest: a.pipeline, Live: a.hub, Alerts: a.alerts, Fleet: a.be.store, Methods: a.methods, Store: a.be.store, Logger: a.log})
	router, server := handlers.New(handlers.Config{
		Store: a.be.store, Devices: a.devices, Assets: assets, Logger: a.log, DeviceHost: a.deviceHost, Live: a.hub,
		CloudMessages: a.cloud, Methods: a.methods, Twins: a.twins, Jobs: a.jobs, Ingest: a.pipeline, Telemetry: a.telemetry,
		SeparateDeviceListener: !IsLoopback(a.cfg.Addr), MQTTWebSocket: a.mqttWS, DeviceQuota: a.quota, Refusals: a.pipeline.Refusals(),
		SecureCookies: a.cfg.DashboardTLS, TrustedProxies: a.cfg.TrustedProxies, Health: a.health,
		DeviceEndpoints: endpoints, DeviceCA: trustAnchorPEM(a.cert),
		Connections: a.mqttConns,
		Alerts:      a.alerts,
		Policies:    policies,
		// The storage page shows them.
		AuditRetention: a.cfg.AuditRetention, AlertRetention: a.cfg.AlertRetention,
		Metrics: a.metrics,
	})
	a.router = router
	// TLS handshake noise from scanners goes to the debug log.
	srv := a.caps.Device.Server(server.DeviceRouter(), slog.NewLogLogger(a.log.Handler(), slog.LevelDebug))
	// Client certificates are asked for, not required: X.509 devices present
	// one, SAS devices none (handlers/device_auth.go checks them).
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{a.cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	// Properties travel in headers; Go's server answers 431 beyond this.
	srv.MaxHeaderBytes = handlers.MaxDeviceHeaderBytes
	a.serve("device endpoint", func() error { return srv.ServeTLS(a.deviceLn, "", "") })
	a.onStop("device endpoint", serverStop, srv.Shutdown)
	a.log.Info("device endpoint (Azure IoT Hub HTTPS API) is listening", "addr", a.deviceLn.Addr().String(), "hostname", a.deviceHost)
	return nil
}

// serveDashboard serves the dashboard and the operator API.
func (a *App) serveDashboard(context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.Addr, err)
	}
	ln = netlimit.New("dashboard", a.caps.DashboardConns, a.log).Wrap(ln)
	errLevel := slog.LevelWarn
	if a.cfg.DashboardTLS {
		errLevel = slog.LevelDebug // failed handshakes: scanners, untrusted certificates
	}
	srv := a.caps.Dashboard.Server(a.router, slog.NewLogLogger(a.log.Handler(), errLevel))
	srv.RegisterOnShutdown(a.hub.Close)
	scheme := "http"
	if a.cfg.DashboardTLS {
		scheme = "https"
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{a.cert}, MinVersion: tls.VersionTLS12}
		a.serve("dashboard server", func() error { return srv.ServeTLS(ln, "", "") })
	} else {
		a.serve("dashboard server", func() error { return srv.Serve(ln) })
	}
	a.onStop("dashboard server", serverStop, srv.Shutdown)
	warnPlainDashboard(a.log, a.cfg.Addr, a.cfg.DashboardTLS)
	a.url = scheme + "://" + displayAddr(ln.Addr().String())
	return nil
}

// serve runs a server's loop; a failure other than its shutdown ends Run.
func (a *App) serve(name string, loop func() error) {
	go func() {
		if err := loop(); !errors.Is(err, http.ErrServerClosed) {
			a.errc <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// startDemo runs the demo's simulated devices against the device endpoints
// like real ones; they stop first.
func (a *App) startDemo(ctx context.Context) error {
	if !a.cfg.Demo {
		return nil
	}
	url, client, err := demoEndpoint(a.deviceLn.Addr(), a.host(), a.cert)
	if err != nil {
		return err
	}
	stopDemo, err := startDemo(ctx, a.be.store, a.devices, url, a.deviceHost, client, a.mqttAddr, a.log)
	if err != nil {
		return err
	}
	a.onStop("demo devices", serverStop, func(context.Context) error { stopDemo(); return nil })
	return nil
}

// host is the name devices dial.
func (a *App) host() string {
	if a.cfg.Hostname == "" {
		return "localhost"
	}
	return a.cfg.Hostname
}

// printBanner says that the hub runs, and tells people where and how to sign in.
func (a *App) printBanner() {
	a.log.Info("fieldhub is running", "url", a.url, "data", a.cfg.DataDir, "node", a.node, "clustered", a.bus.Clustered(),
		"version", a.cfg.Version, "commit", a.cfg.Commit)
	if a.cfg.Banner == nil {
		return
	}
	fmt.Fprintf(a.cfg.Banner, "\n  Fieldhub dashboard: %s\n", a.url)
	if a.firstPassword != "" {
		fmt.Fprintf(a.cfg.Banner, "  Sign in as admin with password %s (shown only now)\n\n", a.firstPassword)
	} else {
		fmt.Fprintf(a.cfg.Banner, "  Sign in with your user; to reset admin's password: fieldhub user passwd --data %s admin\n\n", a.cfg.DataDir)
	}
}

// ensureAdmin creates user admin with a random password when there are no
// users, and returns the password so it can be shown once: it is stored
// only as a hash.
func ensureAdmin(ctx context.Context, store Store, log *slog.Logger) (string, error) {
	n, err := store.CountUsers(ctx)
	if err != nil || n > 0 {
		return "", err
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

// nodeName is the configured node name, or the host name and the
// dashboard's port; a dashboard on port 0 (tests) gets a random suffix,
// since its port is only known later and instances must differ.
func nodeName(cfg Config) (string, error) {
	if cfg.Node != "" {
		return cfg.Node, bus.CheckNode(cfg.Node)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "fieldhub"
	}
	_, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || port == "0" || port == "" {
		port = auth.NewPassword()[:8]
	}
	return bus.DefaultNode(host, port), nil
}

// querySecret is the secret of fleet queries' continuation tokens, made
// once and kept, so that a client paging through a query across a restart
// of the hub can go on.
func querySecret(ctx context.Context, store Store) ([]byte, error) {
	v, err := store.Setting(ctx, db.SettingQuerySecret, "")
	if err != nil {
		return nil, err
	}
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := registry.NewQuerySecret()
	return b, store.SetSetting(ctx, db.SettingQuerySecret, base64.StdEncoding.EncodeToString(b))
}
