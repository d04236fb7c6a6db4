package handlers

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/policy"
	"fieldhub/registry"
	"fieldhub/storage"
)

// deviceHandler is a handler of device requests that knows who sent them.
type deviceHandler func(c echo.Context, who registry.Identity) error

// authenticateDevice checks who sent a device-protocol request, by the one
// device authentication (registry.Authenticate): the Azure IoT SAS token of
// the Authorization header, or without the header the client certificate
// of an X.509 device. The device id in the path is case-sensitive, as in
// Azure. A SAS request is answered 401 when the header is missing or
// malformed, the signature does not match, the token expired or names
// another device; 404 when the device does not exist. Whatever is wrong with
// a certificate — unknown device, SAS device, unregistered thumbprint,
// foreign CA, expired — the device gets a bare 401; why is logged (at debug
// level, as all refusals). 403 for a disabled device is told only to a
// holder of a valid credential.
func (s *Server) authenticateDevice(next echo.HandlerFunc) echo.HandlerFunc {
	return s.withDevice(func(c echo.Context, _ registry.Identity) error { return next(c) })
}

// withDevice is authenticateDevice handing the identity to next as an
// argument: kept in the request's context (c.Set) it cost a map and a copy
// of the identity on the heap per message, a twelfth of what the device
// listener allocated.
func (s *Server) withDevice(next deviceHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		header := strings.TrimSpace(c.Request().Header.Get("Authorization"))
		cred := registry.Credential{SAS: header}
		if header == "" {
			st := c.Request().TLS
			if st == nil || len(st.PeerCertificates) == 0 {
				return errorf(http.StatusUnauthorized, "missing Authorization header; send 'SharedAccessSignature sr=…&sig=…&se=…' signed with the device key")
			}
			cred.Chain = st.PeerCertificates
		}
		var err error
		if cred.DeviceID, err = protocolDeviceID(c); err != nil {
			return err
		}
		var who registry.Identity
		if header != "" && s.policies != nil && policy.IsServiceToken(header) {
			who, err = s.authenticateDeviceByPolicy(c, header, cred.DeviceID)
		} else {
			who, err = s.devices.Authenticate(c.Request().Context(), cred, s.now())
		}
		if err != nil {
			return deviceAuthError(cred, err)
		}
		return next(c, who)
	}
}

// authenticateDeviceByPolicy admits a device request whose token is signed
// with a shared access policy's key (skn=<policy>, sr=<host>/devices/<id>),
// as IoT Hub does for policies with DeviceConnect. Failed attempts are
// throttled per address, as on the service API.
func (s *Server) authenticateDeviceByPolicy(c echo.Context, header, deviceID string) (registry.Identity, error) {
	now := s.now()
	var attempt *auth.Attempt
	if !s.policies.Verified(header, now) {
		var wait time.Duration
		if attempt, wait = s.serviceThrottle.Reserve("", c.RealIP()); attempt == nil {
			return registry.Identity{}, &Error{Status: http.StatusTooManyRequests, RetryAfter: int(math.Ceil(wait.Seconds())),
				Message: "too many failed authentication attempts from this address; try again later"}
		}
	}
	ctx := c.Request().Context()
	p, expires, err := s.policies.AuthenticateDevice(ctx, header, deviceID, now)
	if err != nil {
		if attempt != nil {
			if isTokenError(err) {
				attempt.Fail()
			} else {
				attempt.Release()
			}
		}
		if errors.Is(err, policy.ErrUnknownPolicy) {
			return registry.Identity{}, fmt.Errorf("%w (%v)", auth.ErrBadSignature, err)
		}
		return registry.Identity{}, err
	}
	if attempt != nil {
		attempt.Succeed()
	}
	dev, err := s.store.Device(ctx, deviceID)
	if err != nil {
		return registry.Identity{}, err
	}
	if !dev.Enabled {
		return registry.Identity{}, fmt.Errorf("device %q: %w", deviceID, registry.ErrDisabled)
	}
	return registry.Identity{Device: dev, Method: auth.AuthSASPolicy, Credential: policy.Actor(p.Name), Expires: expires}, nil
}

// deviceAuthError answers a refused device request.
func deviceAuthError(cred registry.Credential, err error) error {
	switch {
	case errors.Is(err, policy.ErrNoRight):
		// Told only to the holder of a valid token.
		return errorf(http.StatusForbidden, "%v", err)
	case errors.Is(err, registry.ErrDisabled):
		return errorf(http.StatusForbidden, "device %q is disabled; an operator must enable it", cred.DeviceID)
	case errors.Is(err, auth.ErrCertificateRefused):
		return &Error{Status: http.StatusUnauthorized, Message: "unauthorized", Err: err}
	case errors.Is(err, storage.ErrNotFound):
		return errorf(http.StatusNotFound, "device %q is not registered with this hub", cred.DeviceID)
	case errors.Is(err, auth.ErrTokenExpired), errors.Is(err, auth.ErrBadSignature), errors.Is(err, auth.ErrWrongDevice),
		errors.Is(err, auth.ErrWrongHost), errors.Is(err, auth.ErrMalformedToken):
		// These messages describe only the token the caller sent.
		return errorf(http.StatusUnauthorized, "%v", err)
	}
	return err
}
