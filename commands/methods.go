package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"fieldhub/db"
)

// Errors of direct method calls; the API maps them to 404 and 504.
var (
	ErrDeviceNotConnected = errors.New("device not connected")
	ErrTimeout            = errors.New("timed out waiting for the device to answer")
	// ErrInstanceUnreachable: the device is connected to another instance
	// of the cluster, which cannot be reached now (the bus is down); the
	// API answers 503.
	ErrInstanceUnreachable = errors.New("the instance holding the device's connection cannot be reached")
)

// MethodTransport carries a direct method call to a connected device and brings
// its answer back. The MQTT transport implements it. It returns
// ErrDeviceNotConnected when the device has no live connection subscribed to
// methods, and ErrTimeout when no answer arrived within timeout.
type MethodTransport interface {
	InvokeMethod(ctx context.Context, deviceID, name string, payload json.RawMessage, timeout time.Duration) (status int, response json.RawMessage, err error)
}

// connectPoll is how often a call with a connect timeout looks for the device again.
const connectPoll = 500 * time.Millisecond

// MethodCall is a direct method request.
type MethodCall struct {
	Name            string
	Payload         json.RawMessage // any JSON value; empty means null
	ResponseTimeout time.Duration   // 0 = default (30 s)
	ConnectTimeout  time.Duration   // how long to wait for the device to connect; 0 = not at all
}

// MethodResult is the device's answer.
type MethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// InvalidMethodError says what is wrong with a method call; the API answers 400.
type InvalidMethodError struct{ Reason string }

func (e *InvalidMethodError) Error() string { return e.Reason }

// Validate checks the call against the limits (limits.go) and fills in defaults.
func (c *MethodCall) Validate() error {
	if err := CheckMethodName(c.Name); err != nil {
		return err
	}
	if len(bytes.TrimSpace(c.Payload)) == 0 {
		c.Payload = json.RawMessage("null")
	}
	if len(c.Payload) > MaxMethodPayload {
		return &InvalidMethodError{fmt.Sprintf("payload is %d bytes; at most %d are allowed", len(c.Payload), MaxMethodPayload)}
	}
	if !json.Valid(c.Payload) {
		return &InvalidMethodError{"payload is not valid JSON"}
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = DefaultResponseTimeout
	}
	if c.ResponseTimeout < MinResponseTimeout || c.ResponseTimeout > MaxResponseTimeout {
		return &InvalidMethodError{fmt.Sprintf("responseTimeoutInSeconds must be from %d to %d", int(MinResponseTimeout/time.Second), int(MaxResponseTimeout/time.Second))}
	}
	if c.ConnectTimeout < 0 || c.ConnectTimeout > MaxConnectTimeout {
		return &InvalidMethodError{fmt.Sprintf("connectTimeoutInSeconds must be from 0 to %d", int(MaxConnectTimeout/time.Second))}
	}
	return nil
}

// InvokerConfig configures an Invoker.
type InvokerConfig struct {
	Store     MethodStore
	Publisher Publisher
	Logger    *slog.Logger
	// Now is the clock of the calls' live times (default time.Now).
	Now func() time.Time
	// Transport may be nil until the MQTT server is up: every call then
	// answers ErrDeviceNotConnected, which is the truth.
	Transport MethodTransport
}

// Invoker runs direct method calls, records each one in the audit log and
// publishes its progress on the device's live stream.
type Invoker struct {
	store     MethodStore
	now       func() time.Time
	pub       Publisher
	log       *slog.Logger
	mu        sync.RWMutex
	transport MethodTransport
	seq       atomic.Int64
	outcomes  [len(MethodOutcomes)]atomic.Int64
}

// MethodOutcomes are the outcomes Outcomes counts, in their order: the
// device answered (whatever its status), the wait ran out, the device was
// not connected, the instance holding its connection was unreachable, or
// the call failed otherwise.
var MethodOutcomes = [...]string{"ok", "timeout", "not_connected", "unreachable", "error"}

// Outcomes returns how many calls ended with each of MethodOutcomes (in
// their order) since start; calls refused before they ran (invalid, unknown
// device) are not counted.
func (i *Invoker) Outcomes() [len(MethodOutcomes)]int64 {
	var n [len(MethodOutcomes)]int64
	for k := range n {
		n[k] = i.outcomes[k].Load()
	}
	return n
}

// NewInvoker builds an Invoker.
func NewInvoker(cfg InvokerConfig) *Invoker {
	if cfg.Publisher == nil {
		cfg.Publisher = nopPublisher{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	i := &Invoker{store: cfg.Store, now: cfg.Now, pub: cfg.Publisher, log: cfg.Logger, transport: cfg.Transport}
	i.seq.Store(time.Now().UnixMilli()) // ids stay unique across restarts for live views
	return i
}

// SetTransport plugs in (or, with nil, removes) the transport that reaches devices.
func (i *Invoker) SetTransport(t MethodTransport) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.transport = t
}

func (i *Invoker) currentTransport() MethodTransport {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.transport
}

// Method call states published live.
const (
	MethodPending      = "pending"
	MethodAnswered     = "answered"
	MethodTimedOut     = "timeout"
	MethodNotConnected = "not connected"
	MethodFailed       = "failed"
)

// MethodCallView is a call's progress as the live stream shows it.
type MethodCallView struct {
	CallID   string          `json:"callId"`
	DeviceID string          `json:"deviceId"`
	Name     string          `json:"name"`
	State    string          `json:"state"`
	Actor    string          `json:"actor"`
	At       time.Time       `json:"at"`
	Status   *int            `json:"status,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// Invoke calls a method on a device on behalf of actor and waits for the answer.
// It returns ErrDeviceNotConnected, ErrTimeout, storage.ErrNotFound for an unknown
// device, or an *InvalidMethodError.
func (i *Invoker) Invoke(ctx context.Context, actor, deviceID string, call MethodCall) (MethodResult, error) {
	if err := call.Validate(); err != nil {
		return MethodResult{}, err
	}
	if _, err := i.store.Device(ctx, deviceID); err != nil {
		return MethodResult{}, err
	}
	view := MethodCallView{
		CallID: fmt.Sprintf("m%d", i.seq.Add(1)), DeviceID: deviceID, Name: call.Name, State: MethodPending,
		Actor: actor, At: i.now().UTC(),
	}
	i.publish(view)

	res, err := i.invoke(ctx, deviceID, call)

	outcome, detail, counted := "ok", "", 0 // counted indexes MethodOutcomes
	switch {
	case err == nil:
		view.State, view.Status, view.Payload = MethodAnswered, &res.Status, res.Payload
		detail = fmt.Sprintf("status %d", res.Status)
	case errors.Is(err, ErrDeviceNotConnected):
		view.State, view.Error, outcome, counted = MethodNotConnected, ErrDeviceNotConnected.Error(), "not connected", 2
	case errors.Is(err, ErrTimeout):
		view.State, view.Error, outcome, counted = MethodTimedOut, ErrTimeout.Error(), "timeout", 1
	case errors.Is(err, ErrInstanceUnreachable):
		view.State, view.Error, outcome, counted = MethodFailed, ErrInstanceUnreachable.Error(), "unreachable", 3
		i.log.Warn("direct method", "device", deviceID, "method", call.Name, "err", err)
	default:
		view.State, view.Error, outcome, counted = MethodFailed, "the call failed; the details are in the server log", "failed", 4
		i.log.Error("direct method", "device", deviceID, "method", call.Name, "err", err)
	}
	i.outcomes[counted].Add(1)
	view.At = i.now().UTC()
	i.publish(view)
	// The request may be gone (the operator closed the page); the record must not be.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	audit(actx, i.store, i.log, db.AuditEntry{Actor: actor, Action: "method.invoke", Target: deviceID + "/" + call.Name,
		Outcome: outcome, Detail: detail})
	return res, err
}

func (i *Invoker) publish(v MethodCallView) { i.pub.PublishMethodCall(v) }

// invoke tries the transport, waiting up to the connect timeout for the device to
// connect if it is not.
func (i *Invoker) invoke(ctx context.Context, deviceID string, call MethodCall) (MethodResult, error) {
	connectBy := time.Now().Add(call.ConnectTimeout)
	for {
		t := i.currentTransport()
		err := ErrDeviceNotConnected
		if t != nil {
			var (
				status  int
				payload json.RawMessage
			)
			status, payload, err = t.InvokeMethod(ctx, deviceID, call.Name, call.Payload, call.ResponseTimeout)
			if err == nil {
				switch {
				case len(bytes.TrimSpace(payload)) == 0:
					payload = json.RawMessage("null")
				case !json.Valid(payload):
					// Devices should answer JSON; pass anything else on as a string.
					payload, _ = json.Marshal(string(payload))
				}
				return MethodResult{Status: status, Payload: payload}, nil
			}
		}
		if !errors.Is(err, ErrDeviceNotConnected) {
			return MethodResult{}, err
		}
		wait := time.Until(connectBy)
		if wait <= 0 {
			return MethodResult{}, err
		}
		select {
		case <-ctx.Done():
			return MethodResult{}, fmt.Errorf("waiting for %s to connect: %w", deviceID, ctx.Err())
		case <-time.After(min(wait, connectPoll)):
		}
	}
}
