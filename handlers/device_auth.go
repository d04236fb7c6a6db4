package handlers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
)

// Auth methods recorded with every message a device sends.
const (
	AuthSASPrimary   = "sas-primary"
	AuthSASSecondary = "sas-secondary"
)

const deviceIdentityKey = "fieldhub.device"

// deviceIdentity is the device that signed a device-protocol request.
type deviceIdentity struct {
	Device db.Device
	Method string // AuthSASPrimary, AuthSASSecondary or one of auth.AuthX509…
}

// authenticatedDevice returns the device set by authenticateDevice.
func authenticatedDevice(c echo.Context) (deviceIdentity, bool) {
	d, ok := c.Get(deviceIdentityKey).(deviceIdentity)
	return d, ok
}

// authenticateDevice checks the Azure IoT SAS token of a device-protocol
// request against the keys of the device named in the path. It answers:
// 401 when the header is missing or malformed, the signature does not match,
// the token expired or names another device; 404 when the device does not
// exist; 403 when it is disabled (told only to a valid key holder). The device
// id in the path is case-sensitive, as in Azure. A request without the
// header but with a client certificate is an X.509 device's
// (authenticateCertificate). X.509 devices have no keys, so their SAS tokens
// never verify.
func (s *Server) authenticateDevice(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		header := c.Request().Header.Get("Authorization")
		if header == "" {
			if st := c.Request().TLS; st != nil && len(st.PeerCertificates) > 0 {
				return s.authenticateCertificate(c, st.PeerCertificates, next)
			}
			return errorf(http.StatusUnauthorized, "missing Authorization header; send 'SharedAccessSignature sr=…&sig=…&se=…' signed with the device key")
		}
		token, err := auth.ParseSAS(strings.TrimSpace(header))
		if err != nil {
			return errorf(http.StatusUnauthorized, "%v", err)
		}
		id, err := protocolDeviceID(c)
		if err != nil {
			return err
		}
		dev, err := s.devices.get(c.Request().Context(), id, s.db.Device, s.now())
		if errors.Is(err, db.ErrNotFound) {
			return errorf(http.StatusNotFound, "device %q is not registered with this hub", id)
		}
		if err != nil {
			return err
		}
		keyIndex, err := token.Verify(dev.DeviceID, dev.Keys(), s.now(), s.sasHostnames)
		switch {
		case err == nil:
		case errors.Is(err, auth.ErrTokenExpired), errors.Is(err, auth.ErrBadSignature), errors.Is(err, auth.ErrWrongDevice),
			errors.Is(err, auth.ErrWrongHost), errors.Is(err, auth.ErrMalformedToken):
			// These messages describe only the token the caller sent.
			return errorf(http.StatusUnauthorized, "%v", err)
		default:
			return err
		}
		if !dev.Enabled {
			return errorf(http.StatusForbidden, "device %q is disabled; an operator must enable it", id)
		}
		method := AuthSASPrimary
		if keyIndex == 1 {
			method = AuthSASSecondary
		}
		c.Set(deviceIdentityKey, deviceIdentity{Device: dev, Method: method})
		return next(c)
	}
}

// authenticateCertificate checks the client certificate of an X.509 device
// (auth.VerifyDeviceCertificate). Whatever is wrong — unknown device, SAS
// device, unregistered thumbprint, foreign CA, expired certificate — the
// device gets a bare 401; why is logged (at debug level, as all refusals).
// 403 for a disabled device is told only to a holder of a valid certificate.
func (s *Server) authenticateCertificate(c echo.Context, chain []*x509.Certificate, next echo.HandlerFunc) error {
	id, err := protocolDeviceID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	dev, err := s.devices.get(ctx, id, s.db.Device, s.now())
	if errors.Is(err, db.ErrNotFound) {
		return &Error{Status: http.StatusUnauthorized, Message: "unauthorized", Err: fmt.Errorf("%w: device %q is not registered", auth.ErrCertificateRefused, id)}
	}
	if err != nil {
		return err
	}
	m, err := auth.VerifyDeviceCertificate(dev.X509Registration(), chain,
		func() ([]*x509.Certificate, error) { return s.db.CACertificates(ctx) }, s.now())
	if errors.Is(err, auth.ErrCertificateRefused) {
		return &Error{Status: http.StatusUnauthorized, Message: "unauthorized", Err: err}
	}
	if err != nil {
		return err
	}
	if !dev.Enabled {
		return errorf(http.StatusForbidden, "device %q is disabled; an operator must enable it", id)
	}
	c.Set(deviceIdentityKey, deviceIdentity{Device: dev, Method: m.Method})
	return next(c)
}

// deviceCacheTTL is how long a device's keys and enabled flag are reused for
// SAS checks. Telemetry devices send many requests a second; a second's delay
// before a disable or key rotation takes effect is the price of not reading
// the device row on every one of them. Changes made through the dashboard or
// API of this process drop the entry at once (checkConnection); changes from
// the CLI take up to this long. A deleted device's messages are refused at
// commit regardless.
const deviceCacheTTL = time.Second

// deviceCache remembers recently read devices for authenticateDevice.
type deviceCache struct {
	mu      sync.Mutex
	entries map[string]cachedDevice
}

type cachedDevice struct {
	dev     db.Device
	fetched time.Time
}

// forget drops a device, so that a disable or delete made through this
// process takes effect at once.
func (dc *deviceCache) forget(id string) {
	dc.mu.Lock()
	delete(dc.entries, id)
	dc.mu.Unlock()
}

// maxCachedDevices bounds the cache; past it the cache starts over.
const maxCachedDevices = 100000

func (dc *deviceCache) get(ctx context.Context, id string, load func(context.Context, string) (db.Device, error), now time.Time) (db.Device, error) {
	dc.mu.Lock()
	e, ok := dc.entries[id]
	dc.mu.Unlock()
	if ok && now.Sub(e.fetched) < deviceCacheTTL && !now.Before(e.fetched) {
		return e.dev, nil
	}
	dev, err := load(ctx, id)
	if err != nil {
		return dev, err // unknown devices are not cached: they may be added any moment
	}
	dc.mu.Lock()
	if dc.entries == nil || len(dc.entries) >= maxCachedDevices {
		dc.entries = make(map[string]cachedDevice)
	}
	dc.entries[id] = cachedDevice{dev: dev, fetched: now}
	dc.mu.Unlock()
	return dev, nil
}
