package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/jobs"
	"fieldhub/live"
	"fieldhub/registry"
	"fieldhub/storage"
)

// The handlers depend on these interfaces, not on the types behind them,
// so any store or service that does the same job plugs in (package app
// builds them; tests use internal/testkit). Telemetry and MessageSubmitter are
// beside their handlers (api_telemetry.go, device_ingest.go).

// Store is what the handlers read and write themselves; the services below
// own every other change. *db.DB implements it, and every store must pass
// the suites of package db/storetest.
type Store interface {
	Accounts
	AuditLog
	FleetReader
	// Ping checks that the storage answers (/readyz).
	Ping(ctx context.Context) error
	// DiskUsage is the space each kind of record takes (the storage page).
	DiskUsage(ctx context.Context) (storage.DiskUsage, error)
}

// Accounts are the operators, their browser sessions and API tokens.
type Accounts interface {
	User(ctx context.Context, username string) (db.User, error)
	Users(ctx context.Context) ([]db.User, error)
	CreateUser(ctx context.Context, username, passwordHash, role string) (db.User, error)
	SetPassword(ctx context.Context, username, passwordHash string) error
	DeleteUser(ctx context.Context, username string) error
	CreateSession(ctx context.Context, token string, userID int64, csrf string, ttl time.Duration) error
	Session(ctx context.Context, token string) (db.Session, error)
	DeleteSession(ctx context.Context, token string) error
	APITokenBySecret(ctx context.Context, token string) (db.APIToken, error)
	TouchAPIToken(ctx context.Context, id int64) error
	// The users page: roles, sign-ins and API tokens (expires zero is
	// never; SetUserRole returns the role the user had and never demotes
	// the last admin).
	SetUserRole(ctx context.Context, username, role string) (string, error)
	RecordLogin(ctx context.Context, userID int64) error
	APITokens(ctx context.Context) ([]db.APIToken, error)
	CreateAPITokenUntil(ctx context.Context, name, role, token string, expires time.Time) (db.APIToken, error)
	RevokeAPIToken(ctx context.Context, id int64) error
}

// AuditLog is who did what, for the audit page and the changes the
// handlers make themselves (sign-in, users).
type AuditLog interface {
	RecordAudit(ctx context.Context, e db.AuditEntry) error
	AuditEntries(ctx context.Context, f db.AuditFilter) ([]db.AuditEntry, error)
	// ListAudit reads one page of entries matching f, newest first; a
	// filter by part of a field reads a bounded window and says where the
	// next page starts (db.AuditPage).
	ListAudit(ctx context.Context, f db.AuditFilter) (db.AuditPage, error)
}

// FleetReader lists the registry for pages and the API.
type FleetReader interface {
	Device(ctx context.Context, deviceID string) (db.Device, error)
	Devices(ctx context.Context, f db.DeviceFilter) ([]db.Device, int, error)
	// EachDevice calls fn with every device f selects (Limit and Offset
	// aside), in f's order with statuses taken at now, holding no more than
	// a short batch in memory (the CSV export).
	EachDevice(ctx context.Context, f db.DeviceFilter, now time.Time, fn func(db.Device) error) error
	FleetCounts(ctx context.Context) (db.FleetCounts, error)
	// DeviceConnectionNode is the instance holding the device's live
	// connection ("" for none): the device page names it when it is not
	// this one (a cluster, --bus).
	DeviceConnectionNode(ctx context.Context, deviceID string) (string, error)
	CertificateAuthorities(ctx context.Context) ([]db.CertificateAuthority, error)
}

// Devices is the device registry service: every device and CA change, with
// its audit and side effects, and device authentication (*registry.Registry).
type Devices interface {
	Authenticate(ctx context.Context, c registry.Credential, now time.Time) (registry.Identity, error)
	Create(ctx context.Context, actor string, nd db.NewDevice) (db.Device, error)
	Update(ctx context.Context, actor, deviceID string, u db.DeviceUpdate) (db.Device, error)
	SetEnabled(ctx context.Context, actor, deviceID string, enabled bool) (db.Device, error)
	SetAuthentication(ctx context.Context, actor, deviceID string, a db.Authentication) (db.Device, error)
	RotateKey(ctx context.Context, actor, deviceID, which string) (db.Device, error)
	Delete(ctx context.Context, actor, deviceID string) error
	RevealConnectionString(ctx context.Context, actor, deviceID, host string) (string, db.Device, error)
	RevealConnections(ctx context.Context, actor, deviceID string, ep registry.Endpoints, now time.Time) ([]registry.Connection, db.Device, error)
	AddCA(ctx context.Context, actor, name string, pemBytes []byte) (db.CertificateAuthority, error)
	RemoveCA(ctx context.Context, actor, name string) error
	// Query runs a page of a fleet query (registry/query.go).
	Query(ctx context.Context, req registry.QueryRequest) (registry.QueryResult, error)
	// Import applies a bulk import file in one transaction (registry/import.go).
	Import(ctx context.Context, actor string, f registry.ImportFile, dryRun bool) (registry.ImportSummary, error)
}

// CloudMessages is the cloud-to-device queue (*commands.CloudQueue).
type CloudMessages interface {
	Send(ctx context.Context, actor, deviceID string, m commands.Message) (db.CloudMessage, error)
	Receive(ctx context.Context, deviceID string) (db.CloudMessage, error)
	Settle(ctx context.Context, deviceID, lockToken, settlement string) (db.CloudMessage, error)
	Purge(ctx context.Context, actor, deviceID string) (int, error)
	History(ctx context.Context, deviceID string, limit int) ([]db.CloudMessage, error)
}

// Methods invokes direct methods (*commands.Invoker).
type Methods interface {
	Invoke(ctx context.Context, actor, deviceID string, call commands.MethodCall) (commands.MethodResult, error)
}

// Connections describes devices' live MQTT connections (*mqtt.Broker): the
// event's Protocol, Remote and At (since when); false without one.
type Connections interface {
	Connection(deviceID string) (live.ConnectionEvent, bool)
}

// Twins reads twins and patches their desired properties (*commands.Twins).
type Twins interface {
	Get(ctx context.Context, deviceID string) (db.Twin, error)
	PatchDesired(ctx context.Context, actor, deviceID string, patch json.RawMessage, ifVersion int64) (db.Twin, error)
}

// Jobs runs commands on many devices (*jobs.Service).
type Jobs interface {
	Create(ctx context.Context, actor string, spec jobs.Spec) (db.Job, error)
	Cancel(ctx context.Context, actor, id string) (db.Job, error)
	Job(ctx context.Context, id string) (db.Job, error)
	Jobs(ctx context.Context, f db.JobFilter) ([]db.Job, error)
	Devices(ctx context.Context, id string, f db.JobDeviceFilter) ([]db.JobDevice, error)
}

// Policies are the shared access policies of the service API
// (*policy.Service): the admin page manages them, the service API and the
// device endpoints check the tokens signed with them.
type Policies interface {
	Authenticate(ctx context.Context, header, path string, now time.Time) (db.Policy, error)
	AuthenticateDevice(ctx context.Context, header, deviceID string, now time.Time) (db.Policy, time.Time, error)
	Verified(header string, now time.Time) bool
	Create(ctx context.Context, actor, name string, rights db.Rights) (db.Policy, error)
	List(ctx context.Context) ([]db.Policy, error)
	Reveal(ctx context.Context, actor, name string) (db.Policy, error)
	Remove(ctx context.Context, actor, name string) error
	RotateKey(ctx context.Context, actor, name, which string) (db.Policy, error)
}

// Live serves the dashboard's live streams (*live.Hub).
type Live interface {
	ServeJobs(w http.ResponseWriter, r *http.Request, lastID int64) error
	ServeFleet(w http.ResponseWriter, r *http.Request, lastID int64, filter map[string]bool) error
	ServeDevice(w http.ResponseWriter, r *http.Request, deviceID string, lastID int64) error
	MessagesPerMinute() int64
}
