package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/storage"
)

// Error is an error with the status and the message that are safe to show.
type Error struct {
	Status  int
	Message string
	Err     error // internal cause, logged, never shown
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int
	// Quiet logs the request at debug level even for a 5xx: its cause is
	// logged elsewhere once (a storage fault, by storage.Health).
	Quiet bool
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// errorf makes an Error whose message is shown to the client.
func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to the status and safe message it deserves: the
// one mapping of every store's errors (package storage) to statuses.
func (s *Server) statusOf(err error) (int, string) {
	var he *Error
	var ee *echo.HTTPError
	var inv *storage.InvalidError
	switch {
	case errors.As(err, &he):
		return he.Status, he.Message
	case errors.As(err, &inv):
		return http.StatusUnprocessableEntity, inv.Error()
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, notFoundMessage(err)
	case errors.Is(err, storage.ErrConflict):
		return http.StatusConflict, err.Error()
	case s.health.FaultKind(err) != "":
		return http.StatusServiceUnavailable, "the hub cannot write to its storage (" + s.health.FaultKind(err) + "); try again later"
	case errors.As(err, &ee):
		msg := http.StatusText(ee.Code)
		if m, ok := ee.Message.(string); ok {
			msg = m
		}
		return ee.Code, msg
	}
	return http.StatusInternalServerError, "internal error; the details are in the server log"
}

// notFoundMessage keeps "device \"x\": not found" (our own wording) and drops anything else.
func notFoundMessage(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "device ") || strings.HasPrefix(msg, "user ") || strings.HasPrefix(msg, "api token ") || strings.HasPrefix(msg, "CA ") || strings.HasPrefix(msg, "policy ") {
		return msg
	}
	return "not found"
}

// wantsJSON tells API and device clients (JSON errors) from browsers (HTML error pages).
func wantsJSON(c echo.Context) bool {
	p := c.Request().URL.Path
	// A scraper of /metrics gets a status, not the sign-in page.
	return strings.HasPrefix(p, "/api/") || isDeviceProtocolPath(p) || p == "/metrics" ||
		strings.Contains(c.Request().Header.Get("Accept"), "application/json")
}

// isDeviceProtocolPath tells the Azure device API (/devices/{id}/messages/…) from
// the dashboard's device pages, which share the /devices/ prefix.
func isDeviceProtocolPath(p string) bool {
	return strings.HasPrefix(p, "/devices/") && strings.Contains(strings.ToLower(p), "/messages/")
}

// handleError is the one place errors become responses.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := s.statusOf(err)
	var he *Error
	isHE := errors.As(err, &he)
	// A storage fault that storage.Health has logged (once) is not logged
	// again for every request it fails.
	fault := status == http.StatusServiceUnavailable && s.health.FaultKind(err) != ""
	quiet := (isHE && he.Quiet) || (fault && !s.health.Status().OK)
	if status >= 500 && !quiet {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("request refused", "method", c.Request().Method, "path", c.Request().URL.Path, "status", status, "err", err)
	}
	switch {
	case isHE && he.RetryAfter > 0:
		c.Response().Header().Set("Retry-After", fmt.Sprint(he.RetryAfter))
	case fault:
		c.Response().Header().Set("Retry-After", fmt.Sprint(storageRetryAfter))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	if wantsJSON(c) {
		_ = c.JSON(status, map[string]string{"error": msg})
		return
	}
	if status == http.StatusUnauthorized {
		_ = c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		return
	}
	if rerr := s.renderError(c, status, msg); rerr != nil {
		s.log.Error("render error page", "err", rerr)
		_ = c.String(status, msg)
	}
}

// decodePathParams percent-decodes every path parameter exactly once. Echo routes
// on the raw path when a request path needed escaping (device ids may hold
// characters like ':' or '$' that SDKs encode), and then hands the parameters
// over still encoded; decoding here keeps every handler from doing it (or doing it twice).
func decodePathParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().URL.RawPath == "" {
			return next(c)
		}
		values := c.ParamValues()
		decoded := make([]string, len(values))
		for i, v := range values {
			d, err := url.PathUnescape(v)
			if err != nil {
				return errorf(http.StatusBadRequest, "path segment %q is not validly percent-encoded", v)
			}
			decoded[i] = d
		}
		c.SetParamValues(decoded...)
		return next(c)
	}
}
