package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/storage"
)

// sendCloudMessageRequest is the body of POST /api/v1/devices/{id}/cloud-messages.
// body is usually a string (sent as its UTF-8 bytes); any other JSON value is
// sent as its JSON text.
type sendCloudMessageRequest struct {
	Body          json.RawMessage   `json:"body"`
	Properties    map[string]string `json:"properties"`
	TTLSeconds    int               `json:"ttlSeconds"`
	MessageID     string            `json:"messageId"`
	CorrelationID string            `json:"correlationId"`
}

func (r sendCloudMessageRequest) bodyBytes() ([]byte, error) {
	raw := bytes.TrimSpace(r.Body)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return []byte{}, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errorf(http.StatusBadRequest, "body is not a valid JSON string: %v", err)
		}
		return []byte(s), nil
	}
	return raw, nil
}

func (s *Server) apiSendCloudMessage(c echo.Context) error {
	var req sendCloudMessageRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	body, err := req.bodyBytes()
	if err != nil {
		return err
	}
	if len(body) > commands.MaxCloudBody {
		return errorf(http.StatusRequestEntityTooLarge, "body is %d bytes; a cloud-to-device message may have at most %d", len(body), commands.MaxCloudBody)
	}
	// 0 (or absent) takes the default.
	if req.TTLSeconds != 0 {
		if err := checkRange("ttlSeconds", req.TTLSeconds, int(commands.MinCloudTTL/time.Second), int(commands.MaxCloudTTL/time.Second), " (1 minute to 2 days)"); err != nil {
			return err
		}
	}
	p, _ := principal(c)
	m, err := s.cloud.Send(c.Request().Context(), p.Actor(), c.Param("id"), commands.Message{
		Body: body, Properties: req.Properties, TTL: time.Duration(req.TTLSeconds) * time.Second,
		MessageID: req.MessageID, CorrelationID: req.CorrelationID,
	})
	if errors.Is(err, db.ErrQueueFull) {
		return errorf(http.StatusForbidden, "the queue of device %s is full: %d messages are waiting, the most allowed; wait for the device to take some or purge the queue",
			c.Param("id"), commands.MaxCloudQueue)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, commands.NewCloudMessageView(m, 0))
}

func (s *Server) apiListCloudMessages(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	msgs, err := s.cloud.History(c.Request().Context(), c.Param("id"), limit)
	if err != nil {
		return err
	}
	out := make([]commands.CloudMessageView, len(msgs))
	for i, m := range msgs {
		out[i] = commands.NewCloudMessageView(m, 0)
	}
	return c.JSON(http.StatusOK, map[string]any{"messages": out})
}

func (s *Server) apiPurgeCloudMessages(c echo.Context) error {
	p, _ := principal(c)
	n, err := s.cloud.Purge(c.Request().Context(), p.Actor(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int{"purged": n})
}

// invokeMethodRequest is the body of POST /api/v1/devices/{id}/methods/{name}.
type invokeMethodRequest struct {
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
}

func (s *Server) apiInvokeMethod(c echo.Context) error {
	var req invokeMethodRequest
	if c.Request().ContentLength != 0 {
		if err := bindJSON(c, &req); err != nil {
			return err
		}
	}
	call := commands.MethodCall{Name: c.Param("name"), Payload: req.Payload}
	if t := req.ResponseTimeoutInSeconds; t != nil {
		if err := checkRange("responseTimeoutInSeconds", *t, int(commands.MinResponseTimeout/time.Second), int(commands.MaxResponseTimeout/time.Second), ""); err != nil {
			return err
		}
		call.ResponseTimeout = time.Duration(*t) * time.Second
	}
	if t := req.ConnectTimeoutInSeconds; t != nil {
		if err := checkRange("connectTimeoutInSeconds", *t, 0, int(commands.MaxConnectTimeout/time.Second), ""); err != nil {
			return err
		}
		call.ConnectTimeout = time.Duration(*t) * time.Second
	}
	p, _ := principal(c)
	res, err := s.methods.Invoke(c.Request().Context(), p.Actor(), c.Param("id"), call)
	var inv *commands.InvalidMethodError
	switch {
	case errors.As(err, &inv):
		if len(call.Payload) > commands.MaxMethodPayload {
			return errorf(http.StatusRequestEntityTooLarge, "%s", inv.Reason)
		}
		return errorf(http.StatusBadRequest, "%s", inv.Reason)
	case errors.Is(err, commands.ErrDeviceNotConnected):
		return errorf(http.StatusNotFound, "device not connected: %s has no live connection that takes direct methods", c.Param("id"))
	case errors.Is(err, commands.ErrTimeout):
		return errorf(http.StatusGatewayTimeout, "timed out: %s did not answer %s in time", c.Param("id"), call.Name)
	case errors.Is(err, commands.ErrInstanceUnreachable):
		return &Error{Status: http.StatusServiceUnavailable, RetryAfter: 5, Err: err,
			Message: fmt.Sprintf("%s is connected to another instance of the hub, which cannot be reached now; try again", c.Param("id"))}
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) apiShowTwin(c echo.Context) error {
	tw, err := s.twins.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", commands.ETag(tw))
	return c.JSON(http.StatusOK, commands.NewTwinView(tw))
}

// apiPatchTwin merges a JSON merge patch (RFC 7386) into the desired properties.
// If-Match, when given, must be the twin's current ETag.
func (s *Server) apiPatchTwin(c echo.Context) error {
	ifVersion, err := commands.ParseETag(c.Request().Header.Get("If-Match"))
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxAPIBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxAPIBody)
		}
		return fmt.Errorf("read twin patch: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "request body is empty; send a JSON merge patch of the desired properties")
	}
	p, _ := principal(c)
	tw, err := s.twins.PatchDesired(c.Request().Context(), p.Actor(), c.Param("id"), body, ifVersion)
	var inv *storage.InvalidError
	switch {
	case errors.Is(err, db.ErrVersionMismatch):
		return errorf(http.StatusPreconditionFailed, "the desired properties changed since you read them (If-Match %s); reload the twin and apply your change again",
			c.Request().Header.Get("If-Match"))
	case errors.As(err, &inv) && (inv.Field == db.TwinDesired):
		return errorf(http.StatusRequestEntityTooLarge, "%s", inv.Reason)
	case errors.As(err, &inv):
		return errorf(http.StatusBadRequest, "%s", inv.Reason)
	case err != nil:
		return err
	}
	c.Response().Header().Set("ETag", commands.ETag(tw))
	return c.JSON(http.StatusOK, commands.NewTwinView(tw))
}
