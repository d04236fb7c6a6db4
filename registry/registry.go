// Package registry owns the device registry: devices, their credentials and
// the CA certificates X.509 devices chain to. Every change goes through a
// Registry, which records it in the audit log, announces it to live viewers
// and closes the device connections it no longer admits, whoever asked —
// the dashboard, the operator API, the CLI or the simulator. It also
// authenticates devices, for HTTPS and MQTT alike (authenticate.go).
package registry

import (
	"context"
	"crypto/x509"
	"log/slog"
	"sync"
	"time"

	"fieldhub/db"
)

// Store is the registry's storage; *db.DB implements it.
type Store interface {
	Device(ctx context.Context, deviceID string) (db.Device, error)
	// CredentialsVersion changes whenever a device's credentials or
	// enabled flag change or a device is deleted, through any process
	// (db/storetest.RunRegistry holds it to that).
	CredentialsVersion(ctx context.Context) (int64, error)
	CreateDevice(ctx context.Context, nd db.NewDevice) (db.Device, error)
	UpdateDevice(ctx context.Context, deviceID string, u db.DeviceUpdate) (db.Device, error)
	RotateDeviceKey(ctx context.Context, deviceID, which string) (db.Device, error)
	DeleteDevice(ctx context.Context, deviceID string) error
	// QueryDevices runs one page of a fleet query: the store compiles the
	// condition with the query package for its dialect
	// (db/storetest.RunFleetQuery holds it to db.DeviceDocument).
	QueryDevices(ctx context.Context, q db.DeviceQuery) ([]db.QueriedDevice, error)
	// ImportDevices creates and updates devices in one transaction, or
	// only says what it would do (dryRun).
	ImportDevices(ctx context.Context, devs []db.ImportDevice, dryRun bool) (db.ImportResult, error)
	AddCertificateAuthority(ctx context.Context, name string, pemBytes []byte) (db.CertificateAuthority, error)
	DeleteCertificateAuthority(ctx context.Context, name string) error
	CACertificates(ctx context.Context) ([]*x509.Certificate, error)
}

// Auditor records who changed what; *db.DB implements it.
type Auditor interface {
	RecordAudit(ctx context.Context, e db.AuditEntry) error
}

// Announcer tells live viewers about status changes that telemetry does not
// reveal (enabled, disabled, deleted); live.Hub implements it.
type Announcer interface {
	SetStatus(deviceID, status string)
}

// Watcher hears of every device created, changed or deleted, after the
// change; *alerting.Service implements it (rules scoped by tags).
type Watcher interface {
	DeviceChanged(ctx context.Context, d db.Device)
	DeviceDeleted(ctx context.Context, deviceID string)
}

// Sessions closes live device connections a change no longer admits;
// *mqtt.Broker implements it.
type Sessions interface {
	// CheckDevice re-checks the device's connection against the registry
	// and closes it if the device was disabled or deleted, or the key,
	// thumbprint or authentication type it connected with is gone.
	CheckDevice(deviceID string)
	// CheckAllDevices re-checks every connection (after a CA certificate
	// was removed, which may have admitted many devices).
	CheckAllDevices()
}

// Config is what a Registry needs. Store and Audit are required.
type Config struct {
	Store Store
	Audit Auditor
	// Live may be nil: nobody watches (the CLI).
	Live Announcer
	// Watcher may be nil: nobody needs to hear of device changes (the CLI).
	Watcher Watcher
	// Sessions may be nil, or set later with SetSessions. A process without
	// connections (the CLI) leaves it nil: a running hub's periodic recheck
	// (mqtt.Config.RecheckInterval) closes what a change no longer admits.
	Sessions Sessions
	// Hostnames, when not empty, are the only hosts a device's SAS token may name.
	Hostnames []string
	Now       func() time.Time
	Logger    *slog.Logger
	// QuerySecret signs fleet queries' continuation tokens; nil: a random
	// one, so tokens do not outlive the process.
	QuerySecret []byte
	// QueryTimeout bounds a fleet query's scan (DefaultQueryTimeout).
	QueryTimeout time.Duration
}

// Registry is the device registry service.
type Registry struct {
	cfg   Config
	log   *slog.Logger
	cache credentialCache

	mu       sync.RWMutex
	sessions Sessions
}

// New builds a Registry.
func New(cfg Config) *Registry {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.QuerySecret) == 0 {
		cfg.QuerySecret = NewQuerySecret()
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	return &Registry{cfg: cfg, log: cfg.Logger, sessions: cfg.Sessions}
}

// SetSessions plugs in the connections to recheck after changes; the MQTT
// broker authenticates through the registry, so it is built after it.
func (r *Registry) SetSessions(s Sessions) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions = s
}

// Device reads a device; an unknown one is storage.ErrNotFound.
func (r *Registry) Device(ctx context.Context, deviceID string) (db.Device, error) {
	return r.cfg.Store.Device(ctx, deviceID)
}

// audit records a change that already happened; a failure is logged, since
// the change stands either way.
func (r *Registry) audit(ctx context.Context, actor, action, target, detail string) {
	// The request may be gone (the operator closed the page); the record must not be.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	e := db.AuditEntry{Actor: actor, Action: action, Target: target, Outcome: "ok", Detail: detail}
	if err := r.cfg.Audit.RecordAudit(ctx, e); err != nil {
		r.log.Error("record audit", "action", action, "target", target, "err", err)
	}
}

// recheck makes a change to a device's credentials or state take effect at
// once: authentication reads the device again, and its connection is
// closed if the change no longer admits it.
func (r *Registry) recheck(deviceID string) {
	r.cache.forget(deviceID)
	r.mu.RLock()
	s := r.sessions
	r.mu.RUnlock()
	if s != nil {
		s.CheckDevice(deviceID)
	}
}

// announce tells live viewers a device's new status.
func (r *Registry) announce(deviceID, status string) {
	if r.cfg.Live != nil {
		r.cfg.Live.SetStatus(deviceID, status)
	}
}

// watch tells the watcher of a device created or changed (d) or deleted.
func (r *Registry) watch(ctx context.Context, d db.Device, deleted string) {
	if r.cfg.Watcher == nil {
		return
	}
	if deleted != "" {
		r.cfg.Watcher.DeviceDeleted(ctx, deleted)
		return
	}
	r.cfg.Watcher.DeviceChanged(ctx, d)
}
