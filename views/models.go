// Package views renders the dashboard's HTML with templ. Each page has one
// view model, a plain struct filled by the handlers; nothing here knows about
// SQL or Echo.
package views

import (
	"time"

	"github.com/a-h/templ"
)

// Roles a dashboard user can have, from most to least powerful.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
)

// Device statuses shown on badges.
const (
	StatusOnline   = "online"
	StatusOffline  = "offline"
	StatusDisabled = "disabled"
)

// Sections of the main navigation, for Page.Nav.
const (
	NavFleet = "fleet"
	NavUsers = "users"
	NavAudit = "audit"
)

// FleetPath is the address of the fleet page, the dashboard's home.
const FleetPath = "/devices"

// AssetPaths resolves a static asset's name to its versioned URL
// (static.Assets implements it).
type AssetPaths interface {
	Path(name string) string
}

// UserInfo is the logged-in user.
type UserInfo struct {
	Username string
	Role     string
}

// IsAdmin reports whether u may manage devices and users.
func (u *UserInfo) IsAdmin() bool { return u != nil && u.Role == RoleAdmin }

// CanCommand reports whether u may send commands to devices (admins and
// operators).
func (u *UserInfo) CanCommand() bool {
	return u != nil && (u.Role == RoleAdmin || u.Role == RoleOperator)
}

// Page is what every page's layout needs.
type Page struct {
	Title  string
	Nav    string    // active section: NavFleet, NavUsers, NavAudit
	User   *UserInfo // nil when logged out
	CSRF   string    // the session's token; goes into every form and the csrf-token meta tag
	Flash  string    // one-time notice shown at the top of the page
	Assets AssetPaths
	// FlashError shows Flash as an error instead of a success notice.
	FlashError bool
	// Now is the time relative dates are computed from; zero means time.Now().
	// Tests set it so output is stable.
	Now time.Time
	// Storage, when set, is a storage fault the layout shows to signed-in
	// users (web/storage.js keeps it current from the live streams).
	Storage *StorageFault
	// Alerts, when set, is the fleet's open alerts for the header's count.
	Alerts *AlertSummary

	name string // data-page on <body>, set by each view
}

// StorageFault is why the hub cannot write to its storage, and since when.
type StorageFault struct {
	Reason string
	Since  time.Time
}

func (p Page) as(name string) Page {
	p.name = name
	return p
}

func (p Page) now() time.Time {
	if p.Now.IsZero() {
		return time.Now()
	}
	return p.Now
}

func (p Page) asset(name string) string {
	if p.Assets == nil {
		return "/static/" + name
	}
	return p.Assets.Path(name)
}

// Tag is one key=value label on a device.
type Tag struct {
	Key   string
	Value string
}

// LoginPage is the sign-in form.
type LoginPage struct {
	Page
	Username string // echoed back after a failed attempt
	Error    string
	Next     string // local address to return to after signing in
}

// FleetPage lists devices, one page at a time.
type FleetPage struct {
	Page
	FleetQuery // filters, order, page size and page number (PageNum, 1-based)
	Devices    []DeviceRow
	PageCount  int
	Total      int // devices matching the filters
	// Fleet-wide counts for the summary cards (not filtered).
	Online, Offline, Disabled int
	MessagesPerMinute         float64
	// LiveURL is the SSE stream with "device" and "stats" events; empty turns
	// live updates off.
	LiveURL string
	// AddDevice, when set, is an add-device form sent back: it opens with
	// what was typed and the error in it.
	AddDevice *AddDevice
	// An advanced query's page (FleetQuery.Advanced): QueryProblem is what
	// is wrong with the query (shown under the search field); the rows of
	// a projection, COUNT() or GROUP BY are QueryColumns and QueryRows
	// instead of Devices; NextAfter continues to the next page ("" on the
	// last); TotalKnown says whether Total counts every match.
	QueryProblem string
	QueryColumns []string
	QueryRows    [][]string
	NextAfter    string
	TotalKnown   bool
	// JobURL opens the jobs page with the query's condition (operators,
	// for a query that selects devices); "" for none.
	JobURL string
}

// AddDevice is the add-device form's input and what was wrong with it:
// Field ("id", "name" or "tags") is the input to fix.
type AddDevice struct {
	ID, Name, Tags string
	Error, Field   string
}

// DeviceRow is one line of the fleet table.
type DeviceRow struct {
	ID           string
	Name         string
	Status       string    // StatusOnline, StatusOffline or StatusDisabled
	LastActivity time.Time // zero: never seen
	Tags         []Tag
	Worst        string // worst open alert severity; "" for none
}

// DevicePage shows one device.
type DevicePage struct {
	Page
	Device DeviceDetail
	// LiveURL is the device's SSE stream ("device", "reading", … events);
	// empty turns live updates off.
	LiveURL string
	// LiveEvents are the stream's event types (live.DeviceStreamEvents): the
	// page script forwards exactly these to the page's modules.
	LiveEvents []string
	// Telemetry and Commands fill the page's #telemetry and #commands
	// sections; nil hides the section.
	Telemetry templ.Component
	Commands  templ.Component
	// Connect is the "Connect a device" panel (ConnectView) in the Overview
	// tab; nil hides it.
	Connect templ.Component
	// Alerts is the alert panel (DeviceAlertsPanel) in the Overview tab;
	// nil leaves it out.
	Alerts templ.Component
	// Connection is the device's live connection, if any.
	Connection DeviceConnection
	// Metrics are the device's metrics with their latest values: the
	// header's tiles.
	Metrics []MetricSummary
}

// DeviceConnection is a device's live (MQTT) connection: Protocol "mqtt" or
// "mqtt-ws", the remote address, since when. Without one the device can
// only poll over HTTPS.
type DeviceConnection struct {
	Connected bool
	Protocol  string
	Remote    string
	Since     time.Time
	// Node is the cluster instance holding the connection ("" on a single
	// instance).
	Node string
}

// DeviceDetail is everything the device page shows about a device.
type DeviceDetail struct {
	ID           string
	Name         string
	Status       string
	Enabled      bool
	Tags         []Tag
	CreatedAt    time.Time
	LastActivity time.Time // zero: never seen
	// DisconnectedAt is when its last MQTT connection closed (zero: never).
	DisconnectedAt time.Time
	// Auth is how the device authenticates: AuthSAS, AuthSelfSigned or
	// AuthCertificateAuthority; thumbprints only for AuthSelfSigned.
	Auth                                   string
	PrimaryThumbprint, SecondaryThumbprint string
}

// X509 reports whether the device authenticates with a certificate (no keys).
func (d DeviceDetail) X509() bool {
	return d.Auth == AuthSelfSigned || d.Auth == AuthCertificateAuthority
}

// How a device authenticates (the registry's authentication types).
const (
	AuthSAS                  = "sas"
	AuthSelfSigned           = "selfSigned"
	AuthCertificateAuthority = "certificateAuthority"
)

// UsersPage lists dashboard users and API tokens (admins only).
type UsersPage struct {
	Page
	Users  []UserRow
	Tokens []TokenRow // newest first
	// NewToken is a token created by this request; its secret is shown
	// this once.
	NewToken *NewToken
}

// UserRow is one line of the users table.
type UserRow struct {
	Username    string
	Role        string
	CreatedAt   time.Time
	LastLoginAt time.Time // zero: never
}

// TokenRow is one line of the API tokens table.
type TokenRow struct {
	ID                                          int64
	Name, Role, Prefix                          string
	CreatedAt, LastUsedAt, ExpiresAt, RevokedAt time.Time // zero: never
	State                                       string    // TokenActive, TokenExpired or TokenRevoked
}

// API token states (db.Token…).
const (
	TokenActive  = "active"
	TokenExpired = "expired"
	TokenRevoked = "revoked"
)

// NewToken is a token just created, with its secret.
type NewToken struct {
	ID                 int64
	Name, Role, Secret string
	ExpiresAt          time.Time // zero: never
}

// ErrorPage explains a failed request.
type ErrorPage struct {
	Page
	Status  int
	Message string // safe to show; never an internal error's text
}
