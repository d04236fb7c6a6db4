// Package serviceapi translates between Azure IoT Hub's service REST API
// and Fieldhub's own model: the JSON shapes of devices, twins, bulk
// registry operations, direct methods and jobs v2, their etags and
// continuation tokens, the api-version rule and IoT Hub's error bodies.
// It parses and formats only; handlers/service_*.go call the registry,
// command and job services with what it gives them, so every change is
// audited and published as any other.
package serviceapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/jobs"
	"fieldhub/query"
	"fieldhub/registry"
	"fieldhub/storage"
)

// IoT Hub's error codes, as its service SDKs read them from the Message
// of an error body ("ErrorCode:<code>;<message>").
const (
	CodeArgumentInvalid        = "ArgumentInvalid"
	CodeInvalidProtocolVersion = "InvalidProtocolVersion"
	CodeUnauthorized           = "IotHubUnauthorizedAccess"
	CodeDeviceNotFound         = "DeviceNotFound"
	CodeDeviceAlreadyExists    = "DeviceAlreadyExists"
	CodePreconditionFailed     = "PreconditionFailed"
	CodeDeviceNotOnline        = "DeviceNotOnline"
	CodeGatewayTimeout         = "GatewayTimeout"
	CodeJobNotFound            = "JobNotFound"
	CodeJobAlreadyExists       = "JobAlreadyExists"
	CodeJobQuotaExceeded       = "JobQuotaExceeded"
	CodeTooManyDevices         = "TooManyDevices"
	CodeRequestEntityTooLarge  = "MessageTooLarge"
	CodeThrottled              = "ThrottlingException"
	CodeServerError            = "ServerError"
	CodeServiceUnavailable     = "ServiceUnavailable"
	CodeInvalidOperation       = "InvalidOperation"
)

// Error is a refusal in IoT Hub's terms: the status, its error code and a
// message safe to show the caller.
type Error struct {
	Status  int
	Code    string
	Message string
	// Err is the internal cause, logged, never shown.
	Err error
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Body is IoT Hub's error body.
type Body struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// NewBody formats e as IoT Hub does. The SDKs split Message at ';' and
// keep the part after the first, so the message holds none.
func NewBody(e *Error, trackingID string, now time.Time) Body {
	msg := strings.ReplaceAll(e.Message, ";", ",")
	return Body{
		Message:          "ErrorCode:" + e.Code + ";" + msg,
		ExceptionMessage: "Tracking ID:" + trackingID + "-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05"),
	}
}

// From maps an error of the services to IoT Hub's terms; notFound is the
// code of a storage.ErrNotFound (DeviceNotFound or JobNotFound). The
// second result is false for an internal failure, whose cause the caller
// logs (the message then says only that it failed).
func From(err error, notFound string) (*Error, bool) {
	var se *Error
	var inv *storage.InvalidError
	var me *commands.InvalidMethodError
	var je *jobs.InvalidError
	var qe *query.Error
	var le *registry.QueryLimitError
	switch {
	case errors.As(err, &se):
		return se, se.Status < 500
	case errors.Is(err, db.ErrVersionMismatch):
		return Errorf(http.StatusPreconditionFailed, CodePreconditionFailed, "the etag in If-Match is no longer current: the twin changed since it was read"), true
	case errors.As(err, &inv):
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "%s", inv.Error()), true
	case errors.As(err, &me):
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "%s", me.Reason), true
	case errors.As(err, &je):
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "%s", je.Reason), true
	case errors.As(err, &qe):
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "query: %s", qe.Error()), true
	case errors.As(err, &le):
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "query: %s", le.Reason), true
	case errors.Is(err, registry.ErrQueryTimeout):
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "query: %s", err.Error()), true
	case errors.Is(err, jobs.ErrTooManyJobs):
		return Errorf(http.StatusTooManyRequests, CodeJobQuotaExceeded, "%s", err.Error()), true
	case errors.Is(err, commands.ErrDeviceNotConnected):
		return Errorf(http.StatusNotFound, CodeDeviceNotOnline, "the device is not online: it has no live connection that takes direct methods"), true
	case errors.Is(err, commands.ErrTimeout):
		return Errorf(http.StatusGatewayTimeout, CodeGatewayTimeout, "timed out waiting for the device to answer the method"), true
	case errors.Is(err, commands.ErrInstanceUnreachable):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeServiceUnavailable, RetryAfter: 5,
			Message: "the hub instance holding the device's connection cannot be reached, try again"}, true
	case errors.Is(err, storage.ErrNotFound):
		if notFound == CodeJobNotFound {
			return Errorf(http.StatusNotFound, CodeJobNotFound, "job not found"), true
		}
		return Errorf(http.StatusNotFound, CodeDeviceNotFound, "device not found"), true
	case errors.Is(err, storage.ErrConflict):
		if notFound == CodeJobNotFound {
			return Errorf(http.StatusConflict, CodeJobAlreadyExists, "a job with this id exists already"), true
		}
		return Errorf(http.StatusConflict, CodeDeviceAlreadyExists, "a device with this id exists already"), true
	}
	return Errorf(http.StatusInternalServerError, CodeServerError, "internal error, the details are in the hub's log"), false
}
