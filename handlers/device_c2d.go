package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
)

// The Azure device API spells the cloud-to-device path "deviceBound" in its
// documentation and "devicebound" in the SDKs; devices may use any letter case.
const deviceBoundSegment = "/messages/deviceBound"

// canonicalDeviceBound is a pre-routing middleware that rewrites any letter case
// of /devices/{id}/messages/devicebound… to the one spelling the routes use.
func canonicalDeviceBound(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		canonicalizeDeviceBound(c.Request().URL)
		return next(c)
	}
}

// canonicalizeDeviceBound is canonicalDeviceBound's rewrite of u.
func canonicalizeDeviceBound(u *url.URL) {
	u.Path = canonicalDeviceBoundPath(u.Path)
	if u.RawPath != "" {
		u.RawPath = canonicalDeviceBoundPath(u.RawPath)
	}
}

func canonicalDeviceBoundPath(p string) string {
	if !strings.HasPrefix(p, "/devices/") {
		return p
	}
	n := len(deviceBoundSegment)
	for i := 0; i+n <= len(p); i++ {
		if !asciiEqualFold(p[i:i+n], deviceBoundSegment) {
			continue
		}
		if end := i + n; end < len(p) && p[end] != '/' {
			return p // a longer word, not our segment
		}
		return p[:i] + deviceBoundSegment + p[i+n:]
	}
	return p
}

// asciiEqualFold compares ignoring ASCII letter case only: Unicode folding
// could match strings of other byte lengths, and paths are compared bytewise.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// protocolDeviceID is the device id from the path; decodePathParams has already
// percent-decoded it.
func protocolDeviceID(c echo.Context) (string, error) {
	return c.Param("id"), nil
}

// receiveCloudMessage hands a device its next cloud-to-device message
// (GET /devices/{id}/messages/deviceBound): 204 when none is waiting, else 200
// with the body, the lock token as a quoted ETag, and the message's properties
// as iothub-* headers.
func (s *Server) receiveCloudMessage(c echo.Context) error {
	id, err := protocolDeviceID(c)
	if err != nil {
		return err
	}
	m, err := s.cloud.Receive(c.Request().Context(), id)
	if errors.Is(err, db.ErrQueueEmpty) {
		return c.NoContent(http.StatusNoContent)
	}
	if err != nil {
		return err
	}
	h := c.Response().Header()
	// Set directly, not through Header.Set, so the names go out in the lower case
	// Azure uses; HTTP does not care, but some device code compares strictly.
	set := func(name, value string) { h[name] = []string{value} }
	h.Set("ETag", `"`+m.LockToken+`"`)
	h.Set("Cache-Control", "no-store")
	set("iothub-messageid", m.MessageID)
	if m.CorrelationID != "" {
		set("iothub-correlationid", m.CorrelationID)
	}
	set("iothub-to", "/devices/"+url.PathEscape(id)+deviceBoundSegment)
	set("iothub-expiry", m.ExpiresAt.UTC().Format(time.RFC3339Nano))
	set("iothub-enqueuedtime", m.EnqueuedAt.UTC().Format(time.RFC3339Nano))
	set("iothub-deliverycount", strconv.Itoa(m.DeliveryCount))
	set("iothub-sequencenumber", strconv.FormatInt(m.ID, 10))
	for k, v := range m.Properties {
		set("iothub-app-"+k, v)
	}
	return c.Blob(http.StatusOK, "application/octet-stream", m.Body)
}

// completeCloudMessage settles a held message: DELETE …/deviceBound/{lock}
// completes it, DELETE …/deviceBound/{lock}?reject rejects it.
func (s *Server) completeCloudMessage(c echo.Context) error {
	settlement := db.SettleComplete
	if _, ok := c.QueryParams()["reject"]; ok {
		settlement = db.SettleReject
	}
	return s.settleCloudMessage(c, settlement)
}

// abandonCloudMessage gives a held message back (POST …/deviceBound/{lock}/abandon).
func (s *Server) abandonCloudMessage(c echo.Context) error {
	return s.settleCloudMessage(c, db.SettleAbandon)
}

func (s *Server) settleCloudMessage(c echo.Context, settlement string) error {
	id, err := protocolDeviceID(c)
	if err != nil {
		return err
	}
	lock := strings.Trim(c.Param("lock"), `"`)
	// The SDKs repeat the lock in If-Match; tolerate it quoted or not, and refuse
	// a request whose two tokens disagree rather than guess which one was meant.
	if im := strings.Trim(strings.TrimSpace(c.Request().Header.Get("If-Match")), `"`); im != "" && im != "*" && im != lock {
		return errorf(http.StatusPreconditionFailed, "If-Match %q does not match the lock token in the path", im)
	}
	if _, err := s.cloud.Settle(c.Request().Context(), id, lock, settlement); err != nil {
		if errors.Is(err, db.ErrLockLost) {
			return errorf(http.StatusPreconditionFailed, "lock token %q is unknown, already settled or expired; receive the message again", lock)
		}
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
