package handlers

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/policy"
	"fieldhub/serviceapi"
)

// The Azure IoT Hub service REST API (docs/service-api.md), on the device
// listener as on IoT Hub: back-end apps built on the service SDKs call it
// with tokens signed with a shared access policy's key. Handlers stay
// thin: serviceapi translates the shapes, the registry, command and job
// services act, audit (as policy:<name>) and publish.

const servicePolicyKey = "fieldhub.policy"

// ServiceRoutes adds the service API to the device listener's router. Its
// paths overlap the dashboard's (/devices/{id}), so it is served there only.
// outer are the router's middlewares, composed around each route once.
func (s *Server) ServiceRoutes(e *echo.Echo, outer ...echo.MiddlewareFunc) {
	if s.policies == nil {
		return
	}
	read := []db.Rights{db.RightRegistryRead}
	write := []db.Rights{db.RightRegistryWrite}
	svc := []db.Rights{db.RightServiceConnect}
	readOrSvc := []db.Rights{db.RightRegistryRead, db.RightServiceConnect}
	route := func(method, path string, h echo.HandlerFunc, anyOf []db.Rights) {
		e.Add(method, path, compose(h, slices.Concat(outer, []echo.MiddlewareFunc{s.serviceErrors, s.checkAPIVersion, s.authenticateService, requireRight(anyOf)})...))
	}
	// Registry (handlers/service_registry.go).
	route(http.MethodGet, "/devices", s.svcListDevices, read)
	route(http.MethodGet, "/devices/", s.svcListDevices, read) // as the Node SDK's Registry.list asks
	route(http.MethodPost, "/devices", s.svcBulkDevices, write)
	route(http.MethodPost, "/devices/query", s.svcQueryDevices, readOrSvc)
	route(http.MethodGet, "/devices/:id", s.svcGetDevice, read)
	route(http.MethodPut, "/devices/:id", s.svcPutDevice, write)
	route(http.MethodDelete, "/devices/:id", s.svcDeleteDevice, write)
	route(http.MethodGet, "/statistics/devices", s.svcDeviceStatistics, read)
	route(http.MethodGet, "/statistics/service", s.svcServiceStatistics, svc)
	// Twins and direct methods (handlers/service_twins.go).
	route(http.MethodGet, "/twins/:id", s.svcGetTwin, readOrSvc)
	route(http.MethodPatch, "/twins/:id", s.svcPatchTwin, svc)
	route(http.MethodPut, "/twins/:id", s.svcReplaceTwin, svc)
	route(http.MethodPost, "/twins/:id/methods", s.svcInvokeMethod, svc)
	// Jobs v2 (handlers/service_jobs.go).
	route(http.MethodGet, "/jobs/v2/query", s.svcQueryJobs, readOrSvc)
	route(http.MethodPut, "/jobs/v2/:id", s.svcCreateJob, svc)
	route(http.MethodGet, "/jobs/v2/:id", s.svcGetJob, readOrSvc)
	route(http.MethodPost, "/jobs/v2/:id/cancel", s.svcCancelJob, svc)
}

// servicePolicy is the policy authenticateService admitted.
func servicePolicy(c echo.Context) db.Policy {
	p, _ := c.Get(servicePolicyKey).(db.Policy)
	return p
}

// serviceActor names the caller in the audit log: policy:<name>.
func serviceActor(c echo.Context) string { return policy.Actor(servicePolicy(c).Name) }

// serviceErrors answers every error of the service API with IoT Hub's
// error body; internal causes are logged, never sent.
func (s *Server) serviceErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		var se *serviceapi.Error
		switch {
		case errors.As(err, &se):
		case s.health.FaultKind(err) != "":
			se = &serviceapi.Error{Status: http.StatusServiceUnavailable, Code: serviceapi.CodeServiceUnavailable, Err: err,
				Message: "the hub cannot write to its storage (" + s.health.FaultKind(err) + "), try again later", RetryAfter: storageRetryAfter}
		default:
			var he *Error
			var ee *echo.HTTPError
			switch {
			case errors.As(err, &he):
				se = &serviceapi.Error{Status: he.Status, Code: codeOfStatus(he.Status), Message: he.Message, Err: err, RetryAfter: he.RetryAfter}
			case errors.As(err, &ee):
				msg, _ := ee.Message.(string)
				se = &serviceapi.Error{Status: ee.Code, Code: codeOfStatus(ee.Code), Message: msg, Err: err}
			default:
				notFound := serviceapi.CodeDeviceNotFound
				if strings.HasPrefix(c.Path(), "/jobs/") {
					notFound = serviceapi.CodeJobNotFound
				}
				se, _ = serviceapi.From(err, notFound)
				se = &serviceapi.Error{Status: se.Status, Code: se.Code, Message: se.Message, Err: err, RetryAfter: se.RetryAfter}
			}
		}
		if se.Status >= 500 {
			s.log.Error("service API request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "status", se.Status, "err", err)
		} else {
			s.log.Debug("service API request refused", "method", c.Request().Method, "path", c.Request().URL.Path, "status", se.Status, "err", err)
		}
		if se.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", fmt.Sprint(se.RetryAfter))
		}
		c.Response().Header().Set("iothub-errorcode", se.Code)
		return c.JSON(se.Status, serviceapi.NewBody(se, trackingID(), s.now()))
	}
}

// codeOfStatus is the error code of a refusal made outside the service
// handlers (a body too large, a method not allowed).
func codeOfStatus(status int) string {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return serviceapi.CodeUnauthorized
	case http.StatusNotFound:
		return serviceapi.CodeDeviceNotFound
	case http.StatusRequestEntityTooLarge:
		return serviceapi.CodeRequestEntityTooLarge
	case http.StatusTooManyRequests:
		return serviceapi.CodeThrottled
	case http.StatusServiceUnavailable:
		return serviceapi.CodeServiceUnavailable
	}
	if status >= 500 {
		return serviceapi.CodeServerError
	}
	return serviceapi.CodeArgumentInvalid
}

// trackingID identifies one refusal in IoT Hub's ExceptionMessage.
func trackingID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkAPIVersion refuses a request without a current api-version.
func (s *Server) checkAPIVersion(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := serviceapi.CheckAPIVersion(c.QueryParam("api-version")); err != nil {
			return err
		}
		return next(c)
	}
}

// authenticateService admits a request whose Authorization header is a
// service SAS token (skn=<policy>) signed with one of the policy's keys
// for this hub: 401 with IoT Hub's error body otherwise. Failed attempts
// are throttled per client address (serviceThrottle), as sign-ins are; a
// token that verified before passes without taking from the budget, so an
// app's many parallel requests are never held.
func (s *Server) authenticateService(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		header := strings.TrimSpace(c.Request().Header.Get("Authorization"))
		unauthorized := func(why string, err error) error {
			return &serviceapi.Error{Status: http.StatusUnauthorized, Code: serviceapi.CodeUnauthorized, Message: why, Err: err}
		}
		if header == "" {
			return unauthorized("missing Authorization header: send 'SharedAccessSignature sr=<host>&sig=…&se=…&skn=<policy>' signed with a shared access policy's key", nil)
		}
		if len(header) > policy.MaxToken {
			return unauthorized(fmt.Sprintf("the Authorization header is longer than %d bytes", policy.MaxToken), nil)
		}
		now := s.now()
		var attempt *auth.Attempt
		if !s.policies.Verified(header, now) {
			var wait time.Duration
			if attempt, wait = s.serviceThrottle.Reserve("", c.RealIP()); attempt == nil {
				return &serviceapi.Error{Status: http.StatusTooManyRequests, Code: serviceapi.CodeThrottled,
					Message: "too many failed authentication attempts from this address, try again later", RetryAfter: int(math.Ceil(wait.Seconds()))}
			}
		}
		p, err := s.policies.Authenticate(c.Request().Context(), header, c.Request().URL.Path, now)
		if err != nil {
			if !isTokenError(err) {
				if attempt != nil {
					attempt.Release()
				}
				return err
			}
			if attempt != nil {
				attempt.Fail()
			}
			if errors.Is(err, policy.ErrUnknownPolicy) {
				// Said as a bad signature is, so that names cannot be probed.
				return unauthorized(auth.ErrBadSignature.Error(), err)
			}
			return unauthorized(err.Error(), err)
		}
		if attempt != nil {
			attempt.Succeed()
		}
		c.Set(servicePolicyKey, p)
		return next(c)
	}
}

// isTokenError tells a refused token from a failure of the hub.
func isTokenError(err error) bool {
	for _, e := range []error{policy.ErrUnknownPolicy, auth.ErrMalformedToken, auth.ErrTokenExpired, auth.ErrBadSignature,
		auth.ErrWrongDevice, auth.ErrWrongHost} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// rightNames names rights for a refusal.
var rightNames = map[db.Rights]string{
	db.RightRegistryRead: "RegistryRead", db.RightRegistryWrite: "RegistryWrite",
	db.RightServiceConnect: "ServiceConnect", db.RightDeviceConnect: "DeviceConnect",
}

// requireRight refuses with 403 a policy that grants none of anyOf.
func requireRight(anyOf []db.Rights) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := servicePolicy(c)
			var names []string
			for _, r := range anyOf {
				if p.Rights.Has(r) {
					return next(c)
				}
				names = append(names, rightNames[r])
			}
			return serviceapi.Errorf(http.StatusForbidden, serviceapi.CodeUnauthorized,
				"policy %q lacks the right this request needs: %s", p.Name, strings.Join(names, " or "))
		}
	}
}

// readServiceBody reads a request body of at most limit bytes, refusing a
// larger one (413) before reading more than the limit.
func readServiceBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	tooLarge := serviceapi.Errorf(http.StatusRequestEntityTooLarge, serviceapi.CodeRequestEntityTooLarge, "the request body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, serviceapi.Errorf(http.StatusBadRequest, serviceapi.CodeArgumentInvalid, "the request body could not be read")
	}
	if len(b) == 0 {
		return nil, serviceapi.Errorf(http.StatusBadRequest, serviceapi.CodeArgumentInvalid, "the request body is empty: send JSON")
	}
	return b, nil
}
