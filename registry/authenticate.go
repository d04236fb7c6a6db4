package registry

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/storage"
)

// ErrDisabled refuses a device that proved who it is but is disabled.
var ErrDisabled = errors.New("device is disabled")

// Credential is what a device presents: a SAS token, or without one the
// certificate chain of its TLS handshake (leaf first).
type Credential struct {
	DeviceID string
	SAS      string // "SharedAccessSignature sr=…&sig=…&se=…"; empty: authenticate by Chain
	Chain    []*x509.Certificate
}

// Identity is an authenticated device.
type Identity struct {
	Device db.Device
	// Method is how it proved who it is: auth.AuthSASPrimary, auth.AuthSASSecondary,
	// auth.AuthX509Primary, auth.AuthX509Secondary or auth.AuthX509CA.
	Method string
	// Credential is what admitted it: the key that signed the token, the
	// matched thumbprint, or the thumbprint of the CA the certificate chains
	// to. A live connection ends when it is no longer registered.
	Credential string
	// Expires is when the token or the certificate chain stops being valid.
	Expires time.Time
}

// Authenticate is the one device authentication of HTTPS and MQTT. It
// checks c against the device's registration at now and returns who the
// device is and how it proved it. The errors say why, for the log; callers
// tell devices less:
//   - a malformed, expired, foreign or wrongly signed SAS token wraps one of
//     auth's SAS errors (auth.ErrMalformedToken, …);
//   - an unknown device is storage.ErrNotFound with a SAS token, and
//     auth.ErrCertificateRefused with a certificate, as every certificate
//     refusal is;
//   - a disabled device is ErrDisabled, told only after its credential
//     checked out, so that only a holder learns it.
//
// Devices are read through a cache (credentialCache); changes made through
// this Registry take effect at once, others within deviceCacheTTL.
func (r *Registry) Authenticate(ctx context.Context, c Credential, now time.Time) (Identity, error) {
	var id Identity
	var err error
	if c.SAS != "" {
		id, err = r.authenticateSAS(ctx, c, now)
	} else {
		id, err = r.authenticateCertificate(ctx, c, now)
	}
	if err != nil {
		return Identity{}, err
	}
	if !id.Device.Enabled {
		return Identity{}, fmt.Errorf("device %q: %w; an operator must enable it", c.DeviceID, ErrDisabled)
	}
	return id, nil
}

func (r *Registry) authenticateSAS(ctx context.Context, c Credential, now time.Time) (Identity, error) {
	if id, ok := r.cache.verifiedSAS(ctx, c.DeviceID, c.SAS, r.cfg.Store.CredentialsVersion, now); ok {
		return id, nil
	}
	tok, err := auth.ParseSAS(c.SAS)
	if err != nil {
		return Identity{}, err
	}
	dev, err := r.cache.get(ctx, c.DeviceID, r.cfg.Store, now)
	if errors.Is(err, storage.ErrNotFound) {
		return Identity{}, fmt.Errorf("device %q is not registered with this hub: %w", c.DeviceID, storage.ErrNotFound)
	}
	if err != nil {
		return Identity{}, err
	}
	// X.509 devices have no keys, so their SAS tokens never verify.
	keyIndex, err := tok.Verify(dev.DeviceID, dev.Keys(), now, r.cfg.Hostnames)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Device: dev, Method: auth.SASMethods[keyIndex], Credential: dev.Keys()[keyIndex], Expires: tok.Expiry}
	r.cache.rememberSAS(c.SAS, id)
	return id, nil
}

func (r *Registry) authenticateCertificate(ctx context.Context, c Credential, now time.Time) (Identity, error) {
	dev, err := r.cache.get(ctx, c.DeviceID, r.cfg.Store, now)
	if errors.Is(err, storage.ErrNotFound) {
		return Identity{}, fmt.Errorf("%w: device %q is not registered", auth.ErrCertificateRefused, c.DeviceID)
	}
	if err != nil {
		return Identity{}, err
	}
	m, err := auth.VerifyDeviceCertificate(dev.X509Registration(), c.Chain,
		func() ([]*x509.Certificate, error) { return r.cfg.Store.CACertificates(ctx) }, now)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Device: dev, Method: m.Method, Credential: m.Credential, Expires: m.NotAfter}, nil
}

// deviceCacheTTL is how long a device's credentials and enabled flag are
// known to be current once read: a change made elsewhere (the CLI, another
// process or hub) takes effect within it. Past it, an entry is used while
// the store's credentials version (Store.CredentialsVersion, which every
// such change moves) is the one read before the entry's row; the version
// itself is read at most once per deviceCacheTTL for the whole fleet.
// Devices sending every few seconds would otherwise have their row read on
// nearly every request. Changes made through the Registry drop the entry at
// once. A deleted device's messages are refused at commit regardless.
const deviceCacheTTL = time.Second

// maxCachedDevices bounds the cache; past it the cache starts over.
const maxCachedDevices = 100000

// credentialCache remembers recently read devices for Authenticate, and
// with each the last SAS token that verified against its keys: devices send
// the same token for as long as it is valid (an hour by default), so that
// token again is checked by comparison and its expiry instead of HMAC.
//
// Every request of every device looks here, so the remembered path takes
// no lock but the map's and copies no more than the Identity it returns:
// entries are pointers, never changed once in the map (a change replaces
// the entry), and the credentials version is read from an atomic pointer.
type credentialCache struct {
	mu      sync.Mutex
	entries map[string]*cachedDevice

	// The store's credentials version as last read, and when; versionMu
	// makes one request read it while the others wait for its answer.
	versionMu sync.Mutex
	version   atomic.Pointer[versionRead] // nil: never read, or the last read failed
}

// versionRead is the store's credentials version read at a time.
type versionRead struct {
	version int64
	at      time.Time
}

// within reports whether now is within deviceCacheTTL after t.
func within(t, now time.Time) bool {
	return now.Sub(t) < deviceCacheTTL && !now.Before(t)
}

type cachedDevice struct {
	dev     db.Device
	fetched time.Time
	// version is the store's credentials version read before dev was;
	// -1 when none was.
	version int64
	// sas is the Authorization value that verified against dev's keys, and
	// verified what it proved, its Device dev; "" when none did yet.
	sas      string
	verified Identity
}

// versionReader reads the store's credentials version.
type versionReader func(context.Context) (int64, error)

// current reports whether e may be used at now: read within the TTL, or
// no credential changed since, as a version read within the TTL says.
func (dc *credentialCache) current(ctx context.Context, e *cachedDevice, read versionReader, now time.Time) bool {
	if within(e.fetched, now) {
		return true
	}
	v, ok := dc.storeVersion(ctx, read, now)
	return ok && e.version >= 0 && v == e.version
}

// storeVersion returns the credentials version as read within
// deviceCacheTTL of now, reading it again when the last read is older.
func (dc *credentialCache) storeVersion(ctx context.Context, read versionReader, now time.Time) (int64, bool) {
	if r := dc.version.Load(); r != nil && within(r.at, now) {
		return r.version, true
	}
	dc.versionMu.Lock()
	defer dc.versionMu.Unlock()
	if r := dc.version.Load(); r != nil && within(r.at, now) {
		return r.version, true // read by the request this one waited for
	}
	v, err := read(ctx)
	if err != nil {
		dc.version.Store(nil)
		return 0, false // the entry is read again, and its error, if any, told
	}
	dc.version.Store(&versionRead{version: v, at: now})
	return v, true
}

// forget drops a device, so that a change takes effect at once.
func (dc *credentialCache) forget(id string) {
	dc.mu.Lock()
	delete(dc.entries, id)
	dc.mu.Unlock()
}

// entry returns the device's entry, nil when there is none.
func (dc *credentialCache) entry(id string) *cachedDevice {
	dc.mu.Lock()
	e := dc.entries[id]
	dc.mu.Unlock()
	return e
}

// deviceSource is what the cache reads devices from (the registry's Store).
type deviceSource interface {
	Device(ctx context.Context, deviceID string) (db.Device, error)
	CredentialsVersion(ctx context.Context) (int64, error)
}

func (dc *credentialCache) get(ctx context.Context, id string, src deviceSource, now time.Time) (db.Device, error) {
	e := dc.entry(id)
	if e != nil && within(e.fetched, now) {
		return e.dev, nil
	}
	// The version first: a change between it and the row read moves the
	// store's version past it, so the entry is read again next time.
	version, vok := dc.storeVersion(ctx, src.CredentialsVersion, now)
	if e != nil && vok && e.version >= 0 && version == e.version {
		return e.dev, nil
	}
	if !vok {
		version = -1
	}
	dev, err := src.Device(ctx, id)
	if err != nil {
		return dev, err // unknown devices are not cached: they may be added any moment
	}
	dc.mu.Lock()
	if dc.entries == nil || len(dc.entries) >= maxCachedDevices {
		dc.entries = make(map[string]*cachedDevice)
	}
	next := &cachedDevice{dev: dev, fetched: now, version: version}
	if old := dc.entries[id]; old != nil && old.sas != "" && sameKeys(old.dev, dev) {
		// Read again, the keys unchanged: the token that verified still does.
		next.sas, next.verified = old.sas, old.verified
		next.verified.Device = dev
	}
	dc.entries[id] = next
	dc.mu.Unlock()
	return dev, nil
}

// verifiedSAS returns what sas proved when it is the token that last
// verified against the device's cached keys, the entry is current and the
// token has not expired at now. Anything else goes the whole way: parse,
// read the device, HMAC.
func (dc *credentialCache) verifiedSAS(ctx context.Context, id, sas string, read versionReader, now time.Time) (Identity, bool) {
	e := dc.entry(id)
	if e == nil || e.sas == "" || !now.Before(e.verified.Expires) || !sameToken(e.sas, sas) || !dc.current(ctx, e, read, now) {
		return Identity{}, false
	}
	return e.verified, true
}

// rememberSAS keeps the token that verified as id, if the cache still holds
// the device as it was verified against (a change dropped it, or another
// read replaced it, in between: then the next request verifies again).
func (dc *credentialCache) rememberSAS(sas string, id Identity) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	e := dc.entries[id.Device.DeviceID]
	if e == nil || !sameKeys(e.dev, id.Device) {
		return
	}
	next := *e
	next.sas, next.verified = sas, id
	next.verified.Device = e.dev
	dc.entries[id.Device.DeviceID] = &next
}

// sameKeys reports whether a and b are the same registration with the same
// SAS keys (a device deleted and created again is another row).
func sameKeys(a, b db.Device) bool {
	return a.ID == b.ID && a.PrimaryKey == b.PrimaryKey && a.SecondaryKey == b.SecondaryKey
}

// sameToken compares a presented token with the one that verified in time
// independent of where they differ, so that timing tells an attacker
// nothing about the valid token's signature.
func sameToken(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
