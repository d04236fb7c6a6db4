package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/registry"
	"fieldhub/storage"
)

const deviceIdentityKey = "fieldhub.device"

// authenticatedDevice returns the device set by authenticateDevice.
func authenticatedDevice(c echo.Context) (registry.Identity, bool) {
	d, ok := c.Get(deviceIdentityKey).(registry.Identity)
	return d, ok
}

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
		who, err := s.devices.Authenticate(c.Request().Context(), cred, s.now())
		if err != nil {
			return deviceAuthError(cred, err)
		}
		c.Set(deviceIdentityKey, who)
		return next(c)
	}
}

// deviceAuthError answers a refused device request.
func deviceAuthError(cred registry.Credential, err error) error {
	switch {
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
