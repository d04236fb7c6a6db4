package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"fieldhub/commands"
)

// methodCalls are the direct method calls waiting for an answer, by $rid.
// Request ids are unique across the broker, so calls to many devices at
// once never mix up their answers.
type methodCalls struct {
	mu    sync.Mutex
	next  uint64
	calls map[string]*methodCall
}

type methodCall struct {
	deviceID string
	reply    chan methodReply // buffered: the device's answer never waits
}

type methodReply struct {
	status  int
	payload json.RawMessage
}

func (m *methodCalls) add(deviceID string) (string, *methodCall) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	rid := strconv.FormatUint(m.next, 16)
	call := &methodCall{deviceID: deviceID, reply: make(chan methodReply, 1)}
	m.calls[rid] = call
	return rid, call
}

func (m *methodCalls) remove(rid string) {
	m.mu.Lock()
	delete(m.calls, rid)
	m.mu.Unlock()
}

func (m *methodCalls) take(deviceID, rid string) *methodCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	call := m.calls[rid]
	if call == nil || call.deviceID != deviceID {
		return nil
	}
	delete(m.calls, rid)
	return call
}

// InvokeMethod calls a direct method on a connected device and waits up to
// timeout for its answer: the device's status and JSON payload. A device
// without a connection, or one that has not subscribed to method requests,
// is not connected as far as methods go.
func (b *Broker) InvokeMethod(ctx context.Context, deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
	if err := commands.CheckMethodName(name); err != nil {
		return 0, nil, fmt.Errorf("invoke method on %q: %w", deviceID, err)
	}
	c := b.current(deviceID)
	if c == nil {
		return 0, nil, fmt.Errorf("invoke method %q on %q: %w", name, deviceID, commands.ErrDeviceNotConnected)
	}
	if !c.subscribed(methodsFilter) {
		return 0, nil, fmt.Errorf("invoke method %q on %q: the device has not subscribed to %s: %w", name, deviceID, methodsFilter, commands.ErrDeviceNotConnected)
	}
	rid, call := b.methods.add(deviceID)
	defer b.methods.remove(rid)
	if err := c.publish0(MethodRequestTopic(name, rid), payload); err != nil {
		return 0, nil, fmt.Errorf("invoke method %q on %q: %v: %w", name, deviceID, err, commands.ErrDeviceNotConnected)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-call.reply:
		return r.status, r.payload, nil
	case <-t.C:
		return 0, nil, fmt.Errorf("invoke method %q on %q: no answer within %s: %w", name, deviceID, timeout, commands.ErrTimeout)
	case <-c.done:
		return 0, nil, fmt.Errorf("invoke method %q on %q: the device disconnected before answering: %w", name, deviceID, commands.ErrDeviceNotConnected)
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("invoke method %q on %q: %w", name, deviceID, ctx.Err())
	}
}

// methodResponse hands a device's answer to the waiting call. Answers to
// calls that timed out, or with a $rid the device was never sent, are
// dropped.
func (b *Broker) methodResponse(c *conn, p Publish, payload []byte) {
	call := b.methods.take(c.deviceID, p.RID)
	if call == nil {
		b.log.Info("method response without a waiting call", "device", c.deviceID, "rid", p.RID, "status", p.Status)
		return
	}
	call.reply <- methodReply{status: p.Status, payload: payload}
}
