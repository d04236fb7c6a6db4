package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/quota"
	"fieldhub/registry"
)

// maxAPIBody bounds operator API request bodies.
const maxAPIBody = 1 << 20

// deviceJSON is a device as the API shows it. Keys are present only for admins.
type deviceJSON struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Tags             map[string]string `json:"tags"`
	Enabled          bool              `json:"enabled"`
	Status           string            `json:"status"`
	Connected        bool              `json:"connected"`
	CreatedAt        time.Time         `json:"createdAt"`
	LastActivityAt   *time.Time        `json:"lastActivityAt"`
	Authentication   authJSON          `json:"authentication"`
	PrimaryKey       string            `json:"primaryKey,omitempty"`
	SecondaryKey     string            `json:"secondaryKey,omitempty"`
	ConnectionString string            `json:"connectionString,omitempty"`
	Throttled        quota.Counts      `json:"throttled"` // refused or held back by the device's quota since start
}

// authJSON is Azure IoT Hub's registry authentication object:
// type sas, selfSigned or certificateAuthority, and a selfSigned device's
// x509Thumbprint. Keys stay in deviceJSON (admins only).
type authJSON struct {
	Type           string           `json:"type"`
	X509Thumbprint *thumbprintsJSON `json:"x509Thumbprint,omitempty"`
}

type thumbprintsJSON struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

func toAuthJSON(a db.Authentication) authJSON {
	out := authJSON{Type: a.Type}
	if a.Type == auth.AuthSelfSigned {
		out.X509Thumbprint = &thumbprintsJSON{PrimaryThumbprint: &a.PrimaryThumbprint}
		if a.SecondaryThumbprint != "" {
			out.X509Thumbprint.SecondaryThumbprint = &a.SecondaryThumbprint
		}
	}
	return out
}

func (a authJSON) toDB() db.Authentication {
	out := db.Authentication{Type: a.Type}
	if t := a.X509Thumbprint; t != nil {
		if t.PrimaryThumbprint != nil {
			out.PrimaryThumbprint = *t.PrimaryThumbprint
		}
		if t.SecondaryThumbprint != nil {
			out.SecondaryThumbprint = *t.SecondaryThumbprint
		}
	}
	return out
}

func (s *Server) deviceJSON(c echo.Context, d db.Device) deviceJSON {
	out := deviceJSON{
		ID: d.DeviceID, Name: d.Name, Tags: d.Tags, Enabled: d.Enabled, Status: d.Status(s.now()),
		Connected: d.Connected, CreatedAt: d.CreatedAt, Throttled: s.quota.Throttled(d.DeviceID),
		Authentication: toAuthJSON(d.Auth),
	}
	if !d.LastActivity.IsZero() {
		t := d.LastActivity
		out.LastActivityAt = &t
	}
	if p, ok := principal(c); ok && p.IsAdmin() {
		out.PrimaryKey, out.SecondaryKey = d.PrimaryKey, d.SecondaryKey
		out.ConnectionString = registry.ConnectionString(s.deviceHost, d)
	}
	return out
}

// bindJSON decodes a bounded JSON body strictly and says what was wrong.
func bindJSON(c echo.Context, v any) error {
	r := http.MaxBytesReader(c.Response(), c.Request().Body, maxAPIBody)
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxAPIBody)
		}
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "request body is empty; send a JSON object")
		}
		// A value of the wrong type (a number too large for its field, a
		// fraction where a whole number belongs, a string for a number) is
		// an invalid field, said in JSON's words rather than Go's.
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			if ute.Field == "" {
				return errorf(http.StatusUnprocessableEntity, "request body must be %s, got %s", jsonKind(ute.Type), ute.Value)
			}
			return errorf(http.StatusUnprocessableEntity, "%s must be %s, got %s", ute.Field, jsonKind(ute.Type), ute.Value)
		}
		return errorf(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid JSON body: more than one value")
	}
	return nil
}

// jsonKind names, for an API client, the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number within its range, without fraction or exponent"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	default:
		return "a JSON object"
	}
}

// checkRange refuses an integer field outside [lo, hi] with 422. Callers
// check before converting (to a time.Duration, say), so nothing overflows.
func checkRange(field string, v, lo, hi int, unit string) error {
	if v < lo || v > hi {
		return errorf(http.StatusUnprocessableEntity, "%s must be from %d to %d%s, got %d", field, lo, hi, unit, v)
	}
	return nil
}

func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errorf(http.StatusBadRequest, "%s must be a whole number from %d to %d", name, lo, hi)
	}
	return n, nil
}

type createDeviceRequest struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Tags           map[string]string `json:"tags"`
	Authentication *authJSON         `json:"authentication"`
}

func (s *Server) apiCreateDevice(c echo.Context) error {
	var req createDeviceRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	nd := db.NewDevice{DeviceID: req.ID, Name: req.Name, Tags: req.Tags}
	if req.Authentication != nil {
		nd.Auth = req.Authentication.toDB()
	}
	d, err := s.devices.Create(c.Request().Context(), actor(c), nd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, s.deviceJSON(c, d))
}

func (s *Server) apiShowDevice(c echo.Context) error {
	d, err := s.store.Device(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.deviceJSON(c, d))
}

type updateDeviceRequest struct {
	Name           *string           `json:"name"`
	Tags           map[string]string `json:"tags"`
	Enabled        *bool             `json:"enabled"`
	Authentication *authJSON         `json:"authentication"`
}

func (s *Server) apiUpdateDevice(c echo.Context) error {
	var req updateDeviceRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	u := db.DeviceUpdate{Name: req.Name, Tags: req.Tags, Enabled: req.Enabled}
	if req.Authentication != nil {
		a := req.Authentication.toDB()
		u.Auth = &a
	}
	d, err := s.devices.Update(c.Request().Context(), actor(c), c.Param("id"), u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.deviceJSON(c, d))
}

func (s *Server) apiDeleteDevice(c echo.Context) error {
	if err := s.devices.Delete(c.Request().Context(), actor(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) apiRotateDeviceKey(c echo.Context) error {
	which := c.QueryParam("key")
	if which == "" {
		var req struct {
			Key string `json:"key"`
		}
		if c.Request().ContentLength != 0 {
			if err := bindJSON(c, &req); err != nil {
				return err
			}
		}
		which = req.Key
	}
	if which == "" {
		which = db.PrimaryKey
	}
	d, err := s.devices.RotateKey(c.Request().Context(), actor(c), c.Param("id"), which)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.deviceJSON(c, d))
}
