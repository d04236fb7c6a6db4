package testkit

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/alerting"
	"fieldhub/auth"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/jobs"
	"fieldhub/live"
	"fieldhub/policy"
	"fieldhub/registry"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// Roles are the dashboard roles, most powerful first.
var Roles = []string{db.RoleAdmin, db.RoleOperator, db.RoleViewer}

// Router is the real router (handlers.New) over a real SQLite file, served
// by httptest, with an API token for each role.
type Router struct {
	DB *db.DB
	// Telemetry is the telemetry store of DB that NewRouter opened, nil
	// when configure set Config.Telemetry.
	Telemetry *telemetry.Store
	Config    handlers.Config // as the router was built, services included
	Echo      *echo.Echo
	Server    *handlers.Server
	HTTP      *httptest.Server
	URL       string
	// Tokens are bearer tokens by role (Roles); "" has none.
	Tokens map[string]string
}

// NewRouter builds the router over a fresh database (Config.Store) with
// DeviceHost hub.test:8443. configure may set any Config field (Store to
// another *db.DB, Live to a *live.Hub); a nil Telemetry becomes the store
// of Config.Store, and the services it leaves nil are built by
// WithServices.
func NewRouter(t testing.TB, configure ...func(*handlers.Config)) *Router {
	t.Helper()
	cfg := handlers.Config{Store: dbtest.MustOpen(t), DeviceHost: "hub.test:8443"}
	for _, f := range configure {
		f(&cfg)
	}
	d, ok := cfg.Store.(*db.DB)
	if !ok {
		t.Fatalf("testkit.NewRouter: Config.Store is a %T, want a *db.DB", cfg.Store)
	}
	hub, _ := cfg.Live.(*live.Hub)
	var tel *telemetry.Store
	if cfg.Telemetry == nil {
		tel = dbtest.Telemetry(t, d)
		cfg.Telemetry = tel
	}
	if cfg.Alerts == nil {
		svc := Alerting(t, d, hub, cfg.Telemetry)
		cfg.Alerts = svc
		if cfg.Devices == nil {
			var ann registry.Announcer
			if hub != nil {
				ann = hub
			}
			cfg.Devices = registry.New(registry.Config{Store: d, Audit: d, Live: ann, Watcher: svc, Now: cfg.Now, Logger: cfg.Logger})
		}
	}
	cfg = WithServices(cfg, d, hub)
	// A jobs service WithServices built runs for the test; one built by
	// the caller is the caller's to start.
	if js, ok := cfg.Jobs.(*jobs.Service); ok && !js.Started() {
		if err := js.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(js.Close)
	}
	e, server := handlers.New(cfg)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	r := &Router{DB: d, Telemetry: tel, Config: cfg, Echo: e, Server: server, HTTP: srv, URL: srv.URL, Tokens: map[string]string{}}
	for _, role := range Roles {
		secret := auth.NewAPIToken()
		if _, err := d.CreateAPIToken(context.Background(), role+"-token", role, secret); err != nil {
			t.Fatal(err)
		}
		r.Tokens[role] = secret
	}
	return r
}

// Alerting starts the alerting service over d, publishing to hub (nil:
// nowhere), with webhooks allowed to reach loopback receivers (tests run
// them on httptest servers); it stops when the test ends.
func Alerting(t testing.TB, d *db.DB, hub *live.Hub, latest alerting.Latest, configure ...func(*alerting.Config)) *alerting.Service {
	t.Helper()
	cfg := alerting.Config{Store: d, Webhooks: d, Fleet: d, Audit: d, Latest: latest, Now: d.Now,
		Delivery: alerting.DeliveryOptions{AllowLoopback: true}}
	if hub != nil {
		cfg.Live = hub
	}
	for _, f := range configure {
		f(&cfg)
	}
	svc, err := alerting.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start alerting: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

// WithServices returns cfg with what it leaves nil built the way serve
// builds it, over d and publishing to hub (nil: nowhere), without
// background work (the cloud-to-device sweeper does not run; every query
// still checks deadlines).
func WithServices(cfg handlers.Config, d *db.DB, hub *live.Hub) handlers.Config {
	var pub commands.Publisher
	var ann registry.Announcer
	if hub != nil { // a nil *live.Hub must not become a non-nil interface
		pub, ann = hub, hub
		if cfg.Live == nil {
			cfg.Live = hub
		}
	}
	if cfg.Store == nil {
		cfg.Store = d
	}
	if cfg.Devices == nil {
		cfg.Devices = registry.New(registry.Config{Store: d, Audit: d, Live: ann, Now: cfg.Now, Logger: cfg.Logger})
	}
	if cfg.CloudMessages == nil {
		cfg.CloudMessages = commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now, Publisher: pub, Logger: cfg.Logger})
	}
	if cfg.Methods == nil {
		cfg.Methods = commands.NewInvoker(commands.InvokerConfig{Store: d, Now: d.Now, Publisher: pub, Logger: cfg.Logger})
	}
	if cfg.Twins == nil {
		cfg.Twins = commands.NewTwins(commands.TwinsConfig{Store: d, Publisher: pub, Logger: cfg.Logger})
	}
	if cfg.Jobs == nil {
		var jp jobs.Publisher
		if hub != nil {
			jp = hub
		}
		cfg.Jobs = jobs.New(jobs.Config{Store: d, Methods: cfg.Methods, Twins: cfg.Twins, Cloud: cfg.CloudMessages,
			ResumeDelay: time.Nanosecond, Publisher: jp, Logger: cfg.Logger, Now: d.Now})
	}
	if cfg.Policies == nil {
		cfg.Policies = policy.New(policy.Config{Store: d, Logger: cfg.Logger, Now: d.Now})
	}
	if cfg.Health == nil { // SQLite's faults are 503s, as in the app
		cfg.Health = storage.NewHealth(cfg.Logger, db.FaultKind, nil)
	}
	return cfg
}

// Device registers a SAS device with id and returns it with its keys.
func (r *Router) Device(t testing.TB, id string) db.Device {
	t.Helper()
	d, err := r.DB.CreateDevice(context.Background(), db.NewDevice{DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
