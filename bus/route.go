package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"fieldhub/commands"
	"fieldhub/storage"
)

// AttachDevices makes the bus deliver to this instance's device
// connections (the broker) what other instances send them.
func (b *Bus) AttachDevices(d Devices) error {
	b.mu.Lock()
	b.devices = d
	b.mu.Unlock()
	if b.nc == nil {
		return nil
	}
	for kind, handler := range map[string]nats.MsgHandler{
		kindMethod: b.serveMethod, kindC2D: b.servePush(kindC2D), kindDesired: b.servePush(kindDesired),
		kindTakeover: b.servePush(kindTakeover),
	} {
		if err := b.subscribe(nodeSubject(b.node, kind), handler); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bus) localDevices() Devices {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.devices
}

// methodRequest is a direct method call sent to the device's instance.
type methodRequest struct {
	Device    string          `json:"device"`
	Name      string          `json:"name"`
	Payload   json.RawMessage `json:"payload"`
	TimeoutMS int64           `json:"timeoutMs"`
}

// methodReply is its answer: the device's, or what went wrong.
type methodReply struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Error is "" (answered), "not connected", "timeout" or "failed".
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// Errors of methodReply.
const (
	replyNotConnected = "not connected"
	replyTimeout      = "timeout"
	replyFailed       = "failed"
)

// replyGrace is how much longer than the method's own timeout the caller
// waits for the other instance's reply, which carries the timeout itself.
const replyGrace = 2 * time.Second

// InvokeMethod calls a direct method on a device wherever it is connected
// (commands.MethodTransport): here, or on the instance the store names,
// through a NATS request that waits for the device's answer.
func (b *Bus) InvokeMethod(ctx context.Context, deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
	d := b.localDevices()
	if d == nil {
		return 0, nil, fmt.Errorf("invoke method %q on %q: no MQTT endpoint: %w", name, deviceID, commands.ErrDeviceNotConnected)
	}
	status, resp, err := d.InvokeMethod(ctx, deviceID, name, payload, timeout)
	if b.nc == nil || !errors.Is(err, commands.ErrDeviceNotConnected) || d.Connected(deviceID) {
		return status, resp, err
	}
	node, lerr := b.cfg.Store.DeviceConnectionNode(ctx, deviceID)
	if errors.Is(lerr, storage.ErrNotFound) || lerr == nil && (node == "" || node == b.node) {
		return status, resp, err
	}
	if lerr != nil {
		return 0, nil, fmt.Errorf("invoke method %q on %q: find its instance: %w", name, deviceID, lerr)
	}
	return b.requestMethod(ctx, node, methodRequest{Device: deviceID, Name: name, Payload: payload, TimeoutMS: timeout.Milliseconds()})
}

// requestMethod sends a call to node and waits for its reply.
func (b *Bus) requestMethod(ctx context.Context, node string, req methodRequest) (int, json.RawMessage, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("invoke method %q on %q (connected to instance %s): %s", req.Name, req.Device, node, fmt.Sprintf(format, args...))
	}
	if st := b.nc.Status(); st != nats.CONNECTED {
		return 0, nil, fmt.Errorf("%w: the bus is %s: %w", fail("no way there"), st, commands.ErrInstanceUnreachable)
	}
	data, err := json.Marshal(req)
	if err != nil {
		return 0, nil, fail("encode: %v", err)
	}
	if len(data) > b.max {
		return 0, nil, fail("the call is %d bytes; the bus carries at most %d", len(data), b.max)
	}
	timeout := time.Duration(req.TimeoutMS)*time.Millisecond + replyGrace
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := &nats.Msg{Subject: nodeSubject(node, kindMethod), Data: data, Header: nats.Header{headerNode: []string{b.node}}}
	res, err := b.nc.RequestMsgWithContext(rctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		// The instance is gone (its devices will be shown offline when
		// its lease ends) or has not subscribed yet.
		return 0, nil, fmt.Errorf("%w: %w", fail("the instance does not answer"), commands.ErrDeviceNotConnected)
	case ctx.Err() != nil:
		return 0, nil, fmt.Errorf("%w: %w", fail("gave up"), ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return 0, nil, fmt.Errorf("%w: %w", fail("no reply within %s", timeout), commands.ErrTimeout)
	case err != nil:
		return 0, nil, fmt.Errorf("%w: %v: %w", fail("request failed"), err, commands.ErrInstanceUnreachable)
	}
	var rep methodReply
	if len(res.Data) > b.max || json.Unmarshal(res.Data, &rep) != nil {
		return 0, nil, fail("the reply (%d bytes) is not a method reply", len(res.Data))
	}
	switch rep.Error {
	case "":
		return rep.Status, rep.Payload, nil
	case replyNotConnected:
		return 0, nil, fmt.Errorf("%w: %w", fail("%s", rep.Message), commands.ErrDeviceNotConnected)
	case replyTimeout:
		return 0, nil, fmt.Errorf("%w: %w", fail("%s", rep.Message), commands.ErrTimeout)
	}
	return 0, nil, fail("%s", rep.Message)
}

// serveMethod runs a call another instance sent for a device connected
// here, on a goroutine of its own (a device may take minutes to answer),
// at most MaxCalls at once.
func (b *Bus) serveMethod(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	if b.tooBig(m) {
		b.reply(m, methodReply{Error: replyFailed, Message: "the call is too large for the bus"})
		return
	}
	var req methodRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || req.Device == "" || req.TimeoutMS <= 0 {
		b.stats.refused.Add(1)
		b.reply(m, methodReply{Error: replyFailed, Message: "malformed method call"})
		return
	}
	select {
	case b.calls <- struct{}{}:
	default:
		b.reply(m, methodReply{Error: replyFailed, Message: fmt.Sprintf("the instance runs %d calls already", cap(b.calls))})
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() { <-b.calls }()
		timeout := min(time.Duration(req.TimeoutMS)*time.Millisecond, commands.MaxResponseTimeout)
		var rep methodReply
		d := b.localDevices()
		status, payload, err := d.InvokeMethod(b.ctx, req.Device, req.Name, req.Payload, timeout)
		switch {
		case err == nil:
			rep = methodReply{Status: status, Payload: payload}
		case errors.Is(err, commands.ErrDeviceNotConnected):
			rep = methodReply{Error: replyNotConnected, Message: err.Error()}
		case errors.Is(err, commands.ErrTimeout):
			rep = methodReply{Error: replyTimeout, Message: err.Error()}
		default:
			b.log.Warn("direct method for another instance", "device", req.Device, "method", req.Name, "err", err)
			rep = methodReply{Error: replyFailed, Message: "the call failed on the device's instance; the details are in its log"}
		}
		b.reply(m, rep)
	}()
}

// reply answers a method call, refusing an answer too large for the bus.
func (b *Bus) reply(m *nats.Msg, rep methodReply) {
	data, err := json.Marshal(rep)
	if err == nil && len(data) > b.max {
		b.stats.refused.Add(1)
		data, err = json.Marshal(methodReply{Error: replyFailed,
			Message: fmt.Sprintf("the device's answer is %d bytes; the bus carries at most %d", len(data), b.max)})
	}
	if err == nil {
		err = m.Respond(data)
	}
	if err != nil {
		b.log.Warn("answer a direct method from another instance", "err", err)
	}
}

// push is what a push to another instance carries.
type push struct {
	Device  string          `json:"device"`
	Patch   json.RawMessage `json:"patch,omitempty"`   // kindDesired
	Version int64           `json:"version,omitempty"` // kindDesired
	By      string          `json:"by,omitempty"`      // kindTakeover: the node the device moved to
}

// route is a push waiting for its device's instance to be looked up.
type route struct {
	kind string
	push push
	node string // known already (takeover)
}

// CloudMessageQueued routes the queue's notification (commands.CloudQueue.
// OnQueued) to the device's instance when that is another: the broker
// here hears it itself.
func (b *Bus) CloudMessageQueued(deviceID string) {
	b.route(route{kind: kindC2D, push: push{Device: deviceID}})
}

// DesiredChanged routes a desired patch (commands.Twins.OnDesired) to the
// device's instance when that is another.
func (b *Bus) DesiredChanged(deviceID string, patch json.RawMessage, version int64) {
	b.route(route{kind: kindDesired, push: push{Device: deviceID, Patch: patch, Version: version}})
}

// TakeOver asks node to close its connection of a device that connected
// here since (mqtt.Cluster).
func (b *Bus) TakeOver(node, deviceID string) {
	b.route(route{kind: kindTakeover, node: node, push: push{Device: deviceID, By: b.node}})
}

// route queues r for the route worker; it never waits. Pushes for devices
// connected here are left to the broker.
func (b *Bus) route(r route) {
	if b.nc == nil {
		return
	}
	if d := b.localDevices(); r.node == "" && d != nil && d.Connected(r.push.Device) {
		return
	}
	select {
	case b.routes <- r:
	default:
		if b.stats.routeDropped.Add(1)%100 == 1 {
			b.log.Warn("pushes to other instances dropped: the bus cannot keep up; queued cloud-to-device messages wait for the device's next wake",
				"dropped", b.stats.routeDropped.Load())
		}
	}
}

// runRoutes looks up each push's instance and sends it, until Close.
func (b *Bus) runRoutes() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case r := <-b.routes:
			b.sendRoute(r)
		}
	}
}

func (b *Bus) sendRoute(r route) {
	node := r.node
	if node == "" {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		var err error
		node, err = b.cfg.Store.DeviceConnectionNode(ctx, r.push.Device)
		cancel()
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) && b.ctx.Err() == nil {
				b.log.Warn("find a device's instance", "device", r.push.Device, "err", err)
			}
			return
		}
	}
	if node == "" || node == b.node {
		return
	}
	data, err := json.Marshal(r.push)
	if err == nil && len(data) > b.max {
		err = fmt.Errorf("%d bytes; the bus carries at most %d", len(data), b.max)
		b.stats.refused.Add(1)
	}
	if err == nil {
		err = b.nc.PublishMsg(&nats.Msg{Subject: nodeSubject(node, r.kind), Data: data, Header: nats.Header{headerNode: []string{b.node}}})
	}
	if err != nil {
		b.log.Warn("push to another instance not sent", "kind", r.kind, "device", r.push.Device, "node", node, "err", err)
	}
}

// servePush returns the handler of one kind of push from another
// instance: it delivers the push to the device's connection here.
func (b *Bus) servePush(kind string) nats.MsgHandler {
	return func(m *nats.Msg) {
		if b.tooBig(m) {
			return
		}
		var p push
		if err := json.Unmarshal(m.Data, &p); err != nil || p.Device == "" {
			b.stats.refused.Add(1)
			b.log.Warn("malformed push from another instance", "subject", m.Subject, "from", m.Header.Get(headerNode))
			return
		}
		d := b.localDevices()
		switch kind {
		case kindC2D:
			d.WakeCloudMessages(p.Device)
		case kindDesired:
			d.PushDesired(p.Device, p.Patch, p.Version)
		case kindTakeover:
			if CheckNode(p.By) != nil {
				p.By = "another instance"
			}
			if d.DisconnectDevice(p.Device, "taken over by a new connection on "+p.By) {
				b.log.Info("session taken over by another instance", "device", p.Device, "by", p.By)
			}
		}
	}
}
