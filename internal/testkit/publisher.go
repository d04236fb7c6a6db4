package testkit

import (
	"sync"
	"testing"
	"time"

	"fieldhub/commands"
	"fieldhub/live"
)

// Event is one event a Publisher recorded: the live event type (live/events.go)
// and the payload as the producer handed it over.
type Event struct {
	Device string
	Type   string
	Data   any
}

// Publisher records what producers publish to the live streams, in order.
// It stands in for live.Hub: it is a commands.Publisher, an mqtt.Presence and
// a registry.Announcer.
type Publisher struct {
	mu     sync.Mutex
	events []Event
	next   chan Event
}

// NewPublisher returns an empty recorder.
func NewPublisher() *Publisher { return &Publisher{next: make(chan Event, 1024)} }

func (p *Publisher) record(e Event) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
	select {
	case p.next <- e:
	default: // Events still has it
	}
}

// Events is everything recorded so far.
func (p *Publisher) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Next waits for the next event not yet taken by Next, failing after Wait.
func (p *Publisher) Next(t testing.TB) Event {
	t.Helper()
	select {
	case e := <-p.next:
		return e
	case <-time.After(Wait):
		t.Fatal("no live event published")
		return Event{}
	}
}

// PublishCloudMessage records a cloud-to-device message's state.
func (p *Publisher) PublishCloudMessage(v commands.CloudMessageView) {
	p.record(Event{Device: v.DeviceID, Type: live.EventCommand, Data: v})
}

// PublishMethodCall records a direct method call's progress.
func (p *Publisher) PublishMethodCall(v commands.MethodCallView) {
	p.record(Event{Device: v.DeviceID, Type: live.EventCommand, Data: v})
}

// PublishTwin records a twin change.
func (p *Publisher) PublishTwin(v commands.TwinView) {
	p.record(Event{Device: v.DeviceID, Type: live.EventTwin, Data: v})
}

// PublishConnection records an MQTT connection opening or closing.
func (p *Publisher) PublishConnection(deviceID string, ev live.ConnectionEvent) {
	p.record(Event{Device: deviceID, Type: live.EventConnection, Data: ev})
}

// SetConnected records the presence change as a device event with status
// "connected" or "disconnected".
func (p *Publisher) SetConnected(deviceID string, connected bool) {
	status := "disconnected"
	if connected {
		status = "connected"
	}
	p.record(Event{Device: deviceID, Type: live.EventDevice, Data: live.DeviceStatus{ID: deviceID, Status: status}})
}

// SetStatus records an announced status (enabled, disabled, deleted).
func (p *Publisher) SetStatus(deviceID, status string) {
	p.record(Event{Device: deviceID, Type: live.EventDevice, Data: live.DeviceStatus{ID: deviceID, Status: status}})
}

// Sessions stands in for the MQTT broker as a registry.Sessions: it records
// which connections it is asked to re-check. The broker's own tests show
// that a re-check closes what a change no longer admits.
type Sessions struct {
	mu      sync.Mutex
	devices []string
	all     int
}

// CheckDevice records a re-check of one device's connection.
func (s *Sessions) CheckDevice(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices = append(s.devices, id)
}

// CheckAllDevices records a re-check of every connection.
func (s *Sessions) CheckAllDevices() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all++
}

// Checked returns the devices re-checked one by one, in order, and how
// many times every connection was.
func (s *Sessions) Checked() (devices []string, all int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.devices...), s.all
}
