package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"fieldhub/ingest"
	"fieldhub/registry"
	"fieldhub/telemetry"
)

// MessageSubmitter stores device-to-cloud messages and returns once they are
// committed; *ingest.Pipeline implements it.
type MessageSubmitter interface {
	Submit(ctx context.Context, msgs ...telemetry.Message) error
	// Busy reports a full queue, so requests are refused before being read.
	Busy() bool
}

// storageRetryAfter is the Retry-After (seconds) of a message refused for a
// storage fault: a full disk waits for an operator, so retrying every second
// would only spend the devices' batteries.
const storageRetryAfter = 10

// maxBatchBody bounds a batch request: its bodies are base64 in JSON, so a
// batch carrying one message of the full 256 KB is about 342 KB.
const maxBatchBody = 1 << 20

// MaxDeviceHeaderBytes bounds the request headers the device listener reads
// (its http.Server's MaxHeaderBytes, which answers 431 beyond it): a
// message's properties travel in headers, and 64 KB is far more than any
// message within the 256 KB limit needs for them.
const MaxDeviceHeaderBytes = 64 << 10

// DeviceRoutes registers the Azure IoT Hub device API (HTTPS) on e. serve
// mounts them on the device listener, and on the dashboard listener only when
// that listens on loopback.
//
// Each route's handler is composed with its middlewares here, once, and the
// router's own middlewares (outer) around them: Echo composes route and
// router middlewares again on every request, one closure each, which was a
// tenth of the device listener's allocations per message. The dashboard
// router passes no outer middlewares (its e.Use has them).
func (s *Server) DeviceRoutes(e *echo.Echo, outer ...echo.MiddlewareFunc) {
	route := func(method, path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
		e.Add(method, path, compose(h, slices.Concat(outer, mw)...))
	}
	route(http.MethodPost, "/devices/:id/messages/events", s.withDevice(s.countRefusals(s.receiveDeviceEvents)))
	// Cloud-to-device (handlers/device_c2d.go); canonicalDeviceBound folds the
	// letter case of "deviceBound" before routing.
	route(http.MethodGet, "/devices/:id/messages/deviceBound", s.receiveCloudMessage, s.authenticateDevice)
	route(http.MethodDelete, "/devices/:id/messages/deviceBound/:lock", s.completeCloudMessage, s.authenticateDevice)
	route(http.MethodPost, "/devices/:id/messages/deviceBound/:lock/abandon", s.abandonCloudMessage, s.authenticateDevice)
	if s.mqttWS != nil {
		// MQTT over WebSockets; the broker authenticates the CONNECT.
		route(http.MethodGet, "/$iothub/websocket", echo.WrapHandler(s.mqttWS))
	}
}

// compose applies middlewares to h as Echo would, first outermost.
func compose(h echo.HandlerFunc, mw ...echo.MiddlewareFunc) echo.HandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// DeviceRouter is the router of the device listener: only the device API.
// Its Echo has no router-level middlewares (e.Pre, e.Use), which Echo would
// compose on every request: the device and service routes carry them,
// composed once (DeviceRoutes, ServiceRoutes), and the letter case of
// "deviceBound" is folded before Echo routes (DeviceHandler.ServeHTTP).
func (s *Server) DeviceRouter() *DeviceHandler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = s.clientIP
	outer := []echo.MiddlewareFunc{middleware.Recover(), s.drainRefusedBody /* handlers/refused_body.go */, decodePathParams}
	s.DeviceRoutes(e, outer...)
	s.ServiceRoutes(e, outer...) // handlers/service_api.go: the IoT Hub service REST API
	return &DeviceHandler{e}
}

// DeviceHandler is the device listener's router (DeviceRouter).
type DeviceHandler struct{ *echo.Echo }

// ServeHTTP folds the letter case of "deviceBound" in the request's path
// (canonicalDeviceBound), then routes it.
func (d *DeviceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	canonicalizeDeviceBound(r.URL)
	d.Echo.ServeHTTP(w, r)
}

// receiveDeviceEvents stores telemetry: POST /devices/{id}/messages/events with
// one message (properties in iothub-* headers) or, with Content-Type
// application/vnd.microsoft.iothub.json, a batch. 204 once committed.
func (s *Server) receiveDeviceEvents(c echo.Context, who registry.Identity) error {
	if s.ingest == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "telemetry ingest is not running", RetryAfter: 5}
	}
	req := c.Request()
	batch := ingest.IsBatch(req.Header)
	// One message is refused before its body is read; a batch once it is
	// decoded, when its count is known.
	if !batch {
		if err := s.takeMessages(who.Device.DeviceID, 1); err != nil {
			return err
		}
	}
	if s.ingest.Busy() {
		// Refuse before reading the body: under a flood, decoding requests that
		// cannot be queued would only spend memory.
		return s.overloaded(ingest.ErrOverloaded)
	}
	limit := int64(ingest.MaxMessageSize)
	// A single message's properties come in its headers and count towards
	// its size, so they are measured before the body is read.
	var single telemetry.Message
	if batch {
		limit = maxBatchBody
	} else {
		single = ingest.MessageFromHTTP(req.Header, nil)
		props := single.Size()
		if props > ingest.MaxMessageSize {
			return errorf(http.StatusRequestEntityTooLarge, "the message's properties are %d bytes; a message may have at most %d (256 KB), properties and body together", props, ingest.MaxMessageSize)
		}
		limit -= int64(props)
	}
	// Content-Length is absent for chunked bodies, which the SDK sends; the
	// reader below enforces the limit either way.
	if req.ContentLength > limit {
		return tooLarge(batch, limit)
	}
	var msgs []telemetry.Message
	if batch {
		var err error
		if msgs, err = s.readBatch(c, limit); err != nil {
			return err
		}
		if err := s.takeMessages(who.Device.DeviceID, len(msgs)); err != nil {
			return err
		}
	} else {
		body, err := s.readDeviceBody(c, false, limit)
		if err != nil {
			return err
		}
		single.Body = body
		one := [1]telemetry.Message{single}
		msgs = one[:]
	}
	for i := range msgs {
		// Who sent it is what authenticated, never what the payload claims.
		msgs[i].DeviceID = who.Device.DeviceID
		msgs[i].AuthMethod = who.Method
		msgs[i].Protocol = ingest.ProtocolHTTPS
	}
	switch err := s.submit(req.Context(), msgs); {
	case err == nil:
		return c.NoContent(http.StatusNoContent)
	case errors.Is(err, ingest.ErrOverloaded):
		return s.overloaded(err)
	case errors.Is(err, ingest.ErrStorage):
		// storage.Health logged the fault when it began, and shows it on /readyz.
		return &Error{Status: http.StatusServiceUnavailable, Message: "the hub cannot store messages right now (storage fault); retry after the Retry-After delay",
			RetryAfter: storageRetryAfter, Err: err, Quiet: true}
	case errors.Is(err, ingest.ErrClosed):
		return &Error{Status: http.StatusServiceUnavailable, Message: "the hub is shutting down; retry later", RetryAfter: 5, Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The device went away while waiting; the message may still commit.
		return &Error{Status: http.StatusRequestTimeout, Message: "request ended before the message was committed", Err: err}
	case errors.Is(err, ingest.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "%v", err)
	case errors.Is(err, ingest.ErrDeviceGone):
		return &Error{Status: http.StatusNotFound, Message: "device " + who.Device.DeviceID + " was deleted", Err: err}
	default:
		return err
	}
}

// submit hands msgs to ingest and waits for their commit. The pipeline is
// called as itself when it is one: through the interface msgs would escape,
// a copy of every single message on the heap.
func (s *Server) submit(ctx context.Context, msgs []telemetry.Message) error {
	if s.pipeline != nil {
		return s.pipeline.Submit(ctx, msgs...)
	}
	return s.ingest.Submit(ctx, slices.Clone(msgs)...)
}

// countRefusals counts the messages next refuses by the answer's status:
// 413 too large, 429 throttled, 503 overloaded or a storage fault.
func (s *Server) countRefusals(next deviceHandler) deviceHandler {
	return func(c echo.Context, who registry.Identity) error {
		err := next(c, who)
		if err != nil {
			s.countRefusal(err)
		}
		return err
	}
}

// countRefusal counts a refused message by the error's status. A function
// of its own: errors.As's target would otherwise be on the heap for every
// message, refused or not.
func (s *Server) countRefusal(err error) {
	var e *Error
	if !errors.As(err, &e) {
		return
	}
	switch e.Status {
	case http.StatusRequestEntityTooLarge:
		s.refusals.Add(ingest.ProtocolHTTPS, ingest.ReasonTooLarge)
	case http.StatusTooManyRequests:
		s.refusals.Add(ingest.ProtocolHTTPS, ingest.ReasonThrottled)
	case http.StatusServiceUnavailable:
		if errors.Is(err, ingest.ErrStorage) {
			s.refusals.Add(ingest.ProtocolHTTPS, ingest.ReasonStorageFault)
		} else {
			s.refusals.Add(ingest.ProtocolHTTPS, ingest.ReasonOverloaded)
		}
	}
}

// batchBodyBudget bounds the bytes of batch requests being read and
// decoded at once (a request whose length is unknown counts as
// unknownBatchBody): a thousand devices uploading batches at the same moment
// would otherwise hold every raw body and its decoded messages in memory
// together, which set the hub's peak memory. Past the budget a batch waits
// for its turn before its body is read, so TCP holds the device back, for
// at most batchBudgetWait, and is then refused with 503 and Retry-After (not
// stored, so nothing acknowledged is lost). Once decoded, the messages count
// against the ingest queue's own bound. What the budget bounds (raw bodies,
// and the pooled buffers kept of them) grows with the rate until it binds,
// so it is what a fast machine holds beyond a loaded one (bench/README.md,
// issue 10, sixth round; 8 MiB before). 4 MiB is two hundred SDK batches of
// 50 messages with Content-Length read at once, more than two cores keep
// busy, but only sixteen chunked ones (each counts unknownBatchBody): slow
// chunked uploads are what a smaller budget would hold back.
const (
	batchBodyBudget  = 4 << 20
	unknownBatchBody = 256 << 10
	batchBudgetWait  = 2 * time.Second
)

// readBatch reads and decodes a batch request's body, within the budget.
func (s *Server) readBatch(c echo.Context, limit int64) ([]telemetry.Message, error) {
	req := c.Request()
	weight := int64(unknownBatchBody)
	if req.ContentLength > 0 {
		weight = min(req.ContentLength, limit)
	}
	weight = min(weight, s.batchBudgetSize) // more could never be had
	ctx, cancel := context.WithTimeout(req.Context(), s.batchBudgetWait)
	err := s.batchBudget.Acquire(ctx, weight)
	cancel()
	if err != nil {
		if req.Context().Err() != nil {
			return nil, &Error{Status: http.StatusRequestTimeout, Message: "request ended while it waited to be read", Err: err}
		}
		return nil, s.overloaded(fmt.Errorf("wait to read a batch: %w", err))
	}
	defer s.batchBudget.Release(weight)
	if s.ingest.Busy() {
		// The queue filled while this batch waited: decoding it now would
		// only spend memory and CPU on messages Submit refuses.
		return nil, s.overloaded(ingest.ErrOverloaded)
	}
	body, err := s.readDeviceBody(c, true, limit)
	if err != nil {
		return nil, err
	}
	// The decoded messages own fresh copies of their bodies: the raw body
	// goes back to the pool at once, not after the commit.
	defer s.releaseBatchBody(body)
	msgs, err := ingest.DecodeBatch(body)
	if err != nil {
		if errors.Is(err, ingest.ErrTooLarge) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "%v", err)
		}
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	return msgs, nil
}

// readDeviceBody reads a telemetry request's body, at most limit bytes. A
// single message keeps its body until commit, so it gets its own slice, of
// exactly Content-Length when that is known (bytes.Buffer would first grow
// it to 512 bytes or twice its size, garbage on every message). A batch is
// decoded into fresh bodies, so its raw JSON is read into a pooled buffer
// (give it back with releaseBatchBody): under load that garbage would
// otherwise set the heap's size.
func (s *Server) readDeviceBody(c echo.Context, batch bool, limit int64) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > limit {
		return nil, tooLarge(batch, limit)
	}
	if !batch && req.ContentLength > 0 {
		// net/http ends the body at Content-Length, which the caller held
		// to limit, so no MaxBytesReader; a shorter body is an error.
		body := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, body); err != nil {
			return nil, bodyReadError(err, batch, limit)
		}
		return body, nil
	}
	r := http.MaxBytesReader(c.Response(), req.Body, limit)
	var buf *bytes.Buffer
	if batch {
		buf, _ = s.batchBodies.Get().(*bytes.Buffer)
	}
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if req.ContentLength > 0 {
		buf.Grow(int(req.ContentLength) + bytes.MinRead) // ReadFrom wants MinRead free to see EOF
	}
	if _, err := buf.ReadFrom(r); err != nil {
		s.releaseBatchBody(buf.Bytes())
		return nil, bodyReadError(err, batch, limit)
	}
	return buf.Bytes(), nil
}

// bodyReadError answers a body that could not be read.
func bodyReadError(err error, batch bool, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(batch, limit)
	}
	return errorf(http.StatusBadRequest, "could not read the request body: %v", err)
}

// releaseBatchBody gives a batch's raw body back to the pool.
func (s *Server) releaseBatchBody(body []byte) {
	if cap(body) <= 64<<10 {
		s.batchBodies.Put(bytes.NewBuffer(body[:0]))
	}
}

// overloaded answers a message refused for a full ingest queue: 503 with
// Retry-After, logged at debug level, and a warning at most once a minute
// (overloadLogEvery): under overload, an error line per refused request
// would spend the CPU the hub is short of, and flood the log.
func (s *Server) overloaded(err error) error {
	now := time.Now().UnixNano()
	if next := s.overloadLogAt.Load(); now >= next && s.overloadLogAt.CompareAndSwap(next, now+int64(overloadLogEvery)) {
		s.log.Warn("the ingest queue is full: device messages are refused with 503 and Retry-After until it drains", "next_warning_in", overloadLogEvery.String())
	}
	return &Error{Status: http.StatusServiceUnavailable, Message: "the hub is overloaded; retry after the Retry-After delay", RetryAfter: 1, Err: err, Quiet: true}
}

// overloadLogEvery bounds how often a full ingest queue is logged.
const overloadLogEvery = time.Minute

// takeMessages takes n messages from the device's budget, or refuses them
// with 429 and how long to wait (Retry-After), as Azure IoT Hub throttles.
func (s *Server) takeMessages(deviceID string, n int) error {
	wait := s.quota.TakeMessages(deviceID, n)
	if wait <= 0 {
		return nil
	}
	retry := int(math.Ceil(wait.Seconds()))
	what := "this message"
	if n > 1 {
		what = fmt.Sprintf("this batch of %d messages", n)
	}
	return &Error{Status: http.StatusTooManyRequests, RetryAfter: retry,
		Message: fmt.Sprintf("device %s is sending faster than its limit of %g messages a second (bursts of %d); %s was not stored: retry after %d s",
			deviceID, s.quota.MessageRate(), s.quota.MessageBurst(), what, retry)}
}

func tooLarge(batch bool, limit int64) error {
	switch {
	case batch:
		return errorf(http.StatusRequestEntityTooLarge, "batch request body is larger than %d bytes", limit)
	case limit == ingest.MaxMessageSize:
		return errorf(http.StatusRequestEntityTooLarge, "message body is larger than %d bytes (256 KB), the device-to-cloud limit", limit)
	default:
		return errorf(http.StatusRequestEntityTooLarge, "message body is larger than %d bytes: with its %d bytes of properties the message would exceed %d bytes (256 KB), the device-to-cloud limit",
			limit, ingest.MaxMessageSize-limit, ingest.MaxMessageSize)
	}
}
