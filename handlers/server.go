// Package handlers is Fieldhub's HTTP surface: pages, the operator API and the
// device endpoints. Handlers stay thin: they parse, call the services
// (registry, commands, ingest), render.
package handlers

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/semaphore"

	"fieldhub/auth"
	"fieldhub/ingest"
	"fieldhub/quota"
	"fieldhub/registry"
	"fieldhub/storage"
)

// Assets resolves and serves the embedded front-end bundle.
type Assets interface {
	Path(name string) string
	Handler() http.Handler
}

// Config is what the HTTP layer needs, wired by hand in package app.
type Config struct {
	// Store is what the handlers read and write themselves. Required.
	Store Store
	// AuditRetention and AlertRetention are shown on the storage page
	// (0: not shown).
	AuditRetention, AlertRetention time.Duration
	// Devices is the device registry: every device and CA change, and
	// device authentication. Required.
	Devices Devices
	Assets  Assets
	Logger  *slog.Logger
	// DeviceHost is the HostName devices dial (host[:port]); it goes into connection strings.
	DeviceHost string
	// DeviceEndpoints is where devices connect, per transport (the device
	// page's "Connect a device" panel); zero means serve's defaults.
	DeviceEndpoints registry.Endpoints
	// DeviceCA is the PEM certificate devices trust, offered for download;
	// nil offers none.
	DeviceCA []byte
	// SecureCookies says the dashboard is served over HTTPS: cookies are
	// Secure and answers carry Strict-Transport-Security.
	SecureCookies bool
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client; from anywhere else the socket's address is the client's.
	TrustedProxies []netip.Prefix
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration
	Now        func() time.Time
	// Live serves the SSE streams; nil answers them with 503.
	Live Live
	// CloudMessages, Methods and Twins are the command services (package
	// commands). Required.
	CloudMessages CloudMessages
	Methods       Methods
	Twins         Twins
	// Connections tells which devices hold a live MQTT connection, over
	// what, from where and since when (*mqtt.Broker); nil: none do.
	Connections Connections
	// Jobs runs commands on many devices (package jobs). Required.
	Jobs Jobs
	// Ingest stores device telemetry (*ingest.Pipeline); nil answers it with 503.
	Ingest MessageSubmitter
	// Telemetry answers the message log and readings queries and the
	// device page's metrics (*telemetry.Store).
	Telemetry Telemetry
	// SeparateDeviceListener leaves the device API off the dashboard router:
	// the app sets it when the dashboard is reachable beyond loopback, so that
	// device traffic never travels in clear text; DeviceRouter serves it.
	SeparateDeviceListener bool
	// MQTTWebSocket serves MQTT over WebSockets at /$iothub/websocket on the
	// device listener (the SDKs' MqttWs transport); nil leaves it off.
	MQTTWebSocket http.Handler
	// BatchBodyBudget bounds the bytes of device batch requests read and
	// decoded at once, and BatchBudgetWait how long a batch waits for its
	// share before it is refused with 503 (defaults batchBodyBudget and
	// batchBudgetWait, device_ingest.go).
	BatchBodyBudget int64
	BatchBudgetWait time.Duration
	// DeviceQuota limits each device's message rate (429 over it) and holds
	// the throttled counts the API shows; nil limits nothing.
	DeviceQuota *quota.Devices
	// Refusals counts the device messages refused (413, 429, 503), for
	// the metrics; nil counts nothing.
	Refusals *ingest.Refusals
	// PasswordCheckWait is how long a sign-in waits for one of the few
	// password check slots before it is answered 503 (default 3 s).
	PasswordCheckWait time.Duration
	// Health is the state of storage writes, shown by /readyz and on every
	// page; nil gets one nobody reports to.
	Health *storage.Health
	// Alerts is the alerting service; nil answers its API with 503.
	Alerts Alerts
	// Metrics serves the Prometheus exposition at /metrics (any signed-in
	// user or API token); nil leaves the route out.
	Metrics http.Handler
	// Policies are the shared access policies of the service API (package
	// policy); nil leaves the service API out and the policies page empty.
	Policies Policies
}

// Server holds the handlers' dependencies.
type Server struct {
	store      Store
	assets     Assets
	log        *slog.Logger
	deviceHost string
	endpoints  registry.Endpoints
	deviceCA   []byte
	secure     bool
	sessionTTL time.Duration
	now        func() time.Time
	throttle   *auth.Throttle
	passwords  *auth.PasswordChecker
	live       Live
	cloud      CloudMessages
	methods    Methods
	conns      Connections
	twins      Twins
	jobs       Jobs
	ingest     MessageSubmitter
	pipeline   *ingest.Pipeline // ingest, when it is the pipeline (Server.submit)
	telemetry  Telemetry
	devices    Devices
	// separateDevice leaves the device API off the dashboard router.
	separateDevice bool
	mqttWS         http.Handler
	clientIP       echo.IPExtractor // what c.RealIP() returns (transport.go)
	health         *storage.Health
	// batchBodies recycles the read buffers of device batch requests;
	// batchBudget bounds their bytes read at once (batchBodyBudget).
	batchBodies sync.Pool
	// refusalWatches recycles drainRefusedBody's watches of a response.
	refusalWatches  sync.Pool
	batchBudget     *semaphore.Weighted
	batchBudgetSize int64
	batchBudgetWait time.Duration
	// overloadLogAt is when the next full-queue warning may be logged (Unix ns).
	overloadLogAt atomic.Int64
	quota         *quota.Devices
	refusals      *ingest.Refusals
	alerts        Alerts
	metrics       http.Handler
	policies      Policies
	// serviceThrottle holds back addresses that keep failing to
	// authenticate to the service API or as devices with policy tokens.
	serviceThrottle *auth.Throttle
	// retention of the audit log and alerts, for the storage page.
	auditRetention, alertRetention time.Duration
}

// New builds the Echo router with every route. The services in cfg are
// built by the caller (package app; tests use internal/testkit).
func New(cfg Config) (*echo.Echo, *Server) {
	if cfg.Store == nil || cfg.Devices == nil || cfg.CloudMessages == nil || cfg.Methods == nil || cfg.Twins == nil || cfg.Jobs == nil {
		panic("handlers.New: Config needs Store, Devices, CloudMessages, Methods, Twins and Jobs")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PasswordCheckWait <= 0 {
		cfg.PasswordCheckWait = 3 * time.Second
	}
	if cfg.Health == nil {
		cfg.Health = storage.NewHealth(cfg.Logger, nil, nil)
	}
	s := &Server{
		store: cfg.Store, assets: cfg.Assets, log: cfg.Logger, deviceHost: cfg.DeviceHost,
		secure: cfg.SecureCookies, sessionTTL: cfg.SessionTTL, now: cfg.Now,
		throttle: auth.NewThrottle(auth.ThrottleConfig{Now: cfg.Now}),
		// A few bcrypt checks at once, never every core.
		passwords: auth.NewPasswordChecker(max(2, min(4, runtime.GOMAXPROCS(0))), cfg.PasswordCheckWait),
		live:      cfg.Live,
		ingest:    cfg.Ingest, telemetry: cfg.Telemetry, devices: cfg.Devices, separateDevice: cfg.SeparateDeviceListener,
		mqttWS: cfg.MQTTWebSocket, health: cfg.Health,
		clientIP: clientIP(cfg.TrustedProxies),
	}
	s.batchBudgetSize, s.batchBudgetWait = cmp.Or(cfg.BatchBodyBudget, batchBodyBudget), cmp.Or(cfg.BatchBudgetWait, batchBudgetWait)
	s.batchBudget = semaphore.NewWeighted(s.batchBudgetSize)
	s.quota = cfg.DeviceQuota
	s.refusals = cfg.Refusals
	s.endpoints, s.deviceCA = cfg.DeviceEndpoints, cfg.DeviceCA
	if s.endpoints.Host == "" {
		s.endpoints = registry.DefaultEndpoints()
	}
	s.alerts = cfg.Alerts
	s.metrics = cfg.Metrics
	s.policies = cfg.Policies
	// Per address only: a budget per policy name would let anyone lock an
	// app out by failing in its name.
	s.refusalWatches.New = newRefusalWatch
	s.pipeline, _ = cfg.Ingest.(*ingest.Pipeline)
	s.serviceThrottle = auth.NewThrottle(auth.ThrottleConfig{Now: cfg.Now, PerUser: math.MaxInt32, PerAddress: 20})
	s.auditRetention, s.alertRetention = cfg.AuditRetention, cfg.AlertRetention
	s.cloud, s.methods, s.twins, s.jobs = cfg.CloudMessages, cfg.Methods, cfg.Twins, cfg.Jobs
	s.conns = cfg.Connections
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = s.clientIP
	s.routes(e)
	return e, s
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Error("readiness check failed", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "database not answering"})
	}
	// A failing commit is not ready either: the hub answers but stores nothing.
	if st := s.health.Status(); !st.OK {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{
			"status": "storage fault", "reason": st.Reason, "since": st.Since.Format(time.RFC3339),
		})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
