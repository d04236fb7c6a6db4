package live

import (
	"errors"
	"fmt"
	"time"

	"fieldhub/commands"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// A cluster's instances each have a hub; a Relay (package bus) carries
// every event a hub publishes to the others, which apply it with
// FromPeer. An operator whose browser is on one instance thus sees the
// telemetry, commands, twins and connections of devices on every other,
// and the fleet counters of the whole cluster. Events are best-effort:
// what the relay cannot carry is lost, and Resync tells the browsers.

// Relay carries a hub's events to the hubs of the other instances. Relay
// runs on the publisher's goroutine (the ingest writer, the broker's
// presence) and must not block: it drops what it cannot carry.
//
// A message event goes to the hubs that follow its device: Watch says when
// this hub starts and stops keeping a device's stream. Every hub gets the
// Activity of every message, which is what the fleet stream needs.
type Relay interface {
	Relay(ev PeerEvent)
	Watch(deviceID string, watching bool)
}

// Types of PeerEvent besides the stream events it carries as they are
// (EventConnection, EventCommand, EventTwin, EventStorage, EventAlert).
const (
	// PeerMessages (Activity, Messages): stored device-to-cloud messages:
	// their count and newest time per device, and their message and
	// reading events for the hubs that follow the device.
	PeerMessages = "messages"
	// PeerConnected (Connected): a device's MQTT connection on the sending
	// instance opened or closed.
	PeerConnected = "connected"
	// PeerStatus (Status): an operator disabled, enabled or deleted a device.
	PeerStatus = "status"
	// PeerLost (Node, Devices): an instance of the cluster stopped renewing
	// its lease, and the sending instance took its devices' connections
	// back: they are offline (package cluster).
	PeerLost = "lost"
)

// PeerEvent is one event as the hubs of a cluster exchange it.
type PeerEvent struct {
	Type       string             `json:"type"`
	Device     string             `json:"device,omitempty"`
	Connected  bool               `json:"connected,omitempty"`
	Status     string             `json:"status,omitempty"`
	Node       string             `json:"node,omitempty"`
	Devices    []string           `json:"devices,omitempty"`
	Activity   []PeerActivity     `json:"activity,omitempty"`
	Messages   []PeerMessage      `json:"messages,omitempty"`
	Connection *ConnectionEvent   `json:"connection,omitempty"`
	Command    *CommandEvent      `json:"command,omitempty"`
	Twin       *commands.TwinView `json:"twin,omitempty"`
	Storage    *storage.Status    `json:"storage,omitempty"`
	Alert      *AlertEvent        `json:"alert,omitempty"`
}

// PeerActivity is what a batch of stored messages says of one device.
type PeerActivity struct {
	Device   string    `json:"d"`
	At       time.Time `json:"at"` // when the hub received the newest
	Messages int       `json:"n"`
}

// PeerMessage is one stored message as its device's stream shows it: cut
// to MaxLiveBody and MaxLiveProperties like every live message.
type PeerMessage struct {
	Message MessageEvent  `json:"message"`
	Reading *ReadingEvent `json:"reading,omitempty"`
}

// maxPeerDeviceID bounds the device ids a peer event may name (the
// registry allows 128 characters).
const maxPeerDeviceID = 128

// MaxLostDevices bounds the devices of one PeerLost event (about 130 KiB
// of ids): a lost instance's devices go out in as many events as needed.
const MaxLostDevices = 1000

// maxPeerNode bounds the node a PeerLost event names (bus.CheckNode
// allows 64 characters).
const maxPeerNode = 64

// anyPeer marks a device found connected to some other instance at start,
// before any instance said which: the first disconnect from any clears it.
const anyPeer = "*"

// relay hands ev to the other instances, if the hub is part of a cluster.
func (h *Hub) relay(ev PeerEvent) {
	if h.opt.Relay != nil && !h.isClosed() {
		h.opt.Relay.Relay(ev)
	}
}

// watch tells the relay that this hub started or stopped keeping a
// device's stream.
func (h *Hub) watch(deviceID string, watching bool) {
	if h.opt.Relay != nil && !h.isClosed() {
		h.opt.Relay.Watch(deviceID, watching)
	}
}

// relayMessages hands a committed batch to the other instances.
func (h *Hub) relayMessages(batch []telemetry.Record, msgs []PeerMessage) {
	if len(batch) == 0 {
		return
	}
	var activity []PeerActivity
	index := map[string]int{}
	for i := range batch {
		m := &batch[i].Message
		k, ok := index[m.DeviceID]
		if !ok {
			k = len(activity)
			index[m.DeviceID] = k
			activity = append(activity, PeerActivity{Device: m.DeviceID})
		}
		a := &activity[k]
		a.Messages++
		if m.EnqueuedAt.After(a.At) {
			a.At = m.EnqueuedAt
		}
	}
	h.relay(PeerEvent{Type: PeerMessages, Activity: activity, Messages: msgs})
}

// FromPeer applies an event another instance (node) published, as if it
// had happened here, without relaying it again. An event that does not
// make sense is refused with an error saying why.
func (h *Hub) FromPeer(node string, ev PeerEvent) error {
	if h.isClosed() {
		return nil
	}
	if err := checkPeerEvent(ev); err != nil {
		return fmt.Errorf("live event from %s: %w", node, err)
	}
	switch ev.Type {
	case PeerMessages:
		h.peerActivity(ev.Activity)
		h.peerMessages(ev.Messages)
	case PeerConnected:
		h.setConnected(ev.Device, node, ev.Connected)
	case PeerStatus:
		h.setStatus(ev.Device, ev.Status)
	case PeerLost:
		h.lost(ev.Node, ev.Devices)
	case EventConnection:
		h.publishDevice(ev.Device, EventConnection, ev.Connection)
	case EventCommand:
		h.publishDevice(ev.Device, EventCommand, ev.Command)
	case EventTwin:
		h.publishDevice(ev.Device, EventTwin, ev.Twin)
	case EventStorage:
		h.publishAll(EventStorage, ev.Storage)
	case EventAlert:
		h.publishAlert(*ev.Alert)
	}
	return nil
}

// checkPeerEvent refuses an event whose type is unknown or that lacks what
// its type needs.
func checkPeerEvent(ev PeerEvent) error {
	needsDevice := ev.Type != PeerMessages && ev.Type != EventStorage && ev.Type != PeerLost
	switch {
	case ev.Type == PeerLost:
		if ev.Node == "" || len(ev.Node) > maxPeerNode || len(ev.Devices) == 0 || len(ev.Devices) > MaxLostDevices {
			return fmt.Errorf("lost event without a node of 1 to %d bytes or with no or more than %d devices", maxPeerNode, MaxLostDevices)
		}
		for _, d := range ev.Devices {
			if d == "" || len(d) > maxPeerDeviceID {
				return fmt.Errorf("lost event naming a device id not of 1 to %d bytes", maxPeerDeviceID)
			}
		}
		return nil
	case needsDevice && (ev.Device == "" || len(ev.Device) > maxPeerDeviceID):
		return fmt.Errorf("%s event without a device id of 1 to %d bytes", ev.Type, maxPeerDeviceID)
	case ev.Type == PeerMessages:
		for _, a := range ev.Activity {
			if a.Device == "" || len(a.Device) > maxPeerDeviceID || a.Messages < 1 {
				return errors.New("activity without a device id of 1 to 128 bytes or without messages")
			}
		}
		for _, m := range ev.Messages {
			if m.Message.DeviceID == "" || len(m.Message.DeviceID) > maxPeerDeviceID {
				return errors.New("message without a device id of 1 to 128 bytes")
			}
		}
		return nil
	case ev.Type == PeerConnected:
		return nil
	case ev.Type == PeerStatus:
		if ev.Status == "" {
			return errors.New("status event without a status")
		}
		return nil
	case ev.Type == EventConnection && ev.Connection != nil,
		ev.Type == EventCommand && ev.Command != nil,
		ev.Type == EventTwin && ev.Twin != nil,
		ev.Type == EventStorage && ev.Storage != nil:
		return nil
	case ev.Type == EventAlert && ev.Alert != nil:
		if ev.Alert.Alert.DeviceID != ev.Device {
			return errors.New("alert event of another device than it names")
		}
		return nil
	}
	return fmt.Errorf("unknown event type %q or an event without its payload", ev.Type)
}

// peerActivity is Committed's fleet part for messages stored by another
// instance: the cluster's message rate and the devices' activity.
func (h *Hub) peerActivity(batch []PeerActivity) {
	if len(batch) == 0 {
		return
	}
	now := h.opt.Now()
	var due []DeviceStatus
	h.mu.Lock()
	for i := range batch {
		id := batch[i].Device
		h.countMessages(now, batch[i].Messages)
		a := h.activityOf(id)
		if batch[i].At.After(a.last) {
			a.last = batch[i].At
		}
		if ds, ok := h.due(id, a, now); ok {
			delete(h.pending, id)
			due = append(due, ds)
		} else {
			h.pending[id] = struct{}{}
		}
	}
	h.mu.Unlock()
	h.announce(due)
}

// peerMessages is Committed's device part for messages stored by another
// instance: their events on the streams of the devices followed here.
func (h *Hub) peerMessages(batch []PeerMessage) {
	for i := range batch {
		m := &batch[i]
		h.mu.Lock()
		st := h.devices[m.Message.DeviceID]
		h.mu.Unlock()
		if st == nil {
			continue
		}
		h.publish(st, m.Message.DeviceID, EventMessage, m.Message)
		if m.Reading != nil {
			h.publish(st, m.Message.DeviceID, EventReading, m.Reading)
		}
	}
}

// Lost announces, here and on every other instance, that the devices
// whose MQTT connections were on node are offline: that instance was
// found lost (its lease ran out) and its connections were taken back.
func (h *Hub) Lost(node string, deviceIDs []string) {
	for len(deviceIDs) > 0 {
		n := min(len(deviceIDs), MaxLostDevices)
		h.lost(node, deviceIDs[:n])
		h.relay(PeerEvent{Type: PeerLost, Node: node, Devices: deviceIDs[:n]})
		deviceIDs = deviceIDs[n:]
	}
}

// lost applies a lost instance's devices here: each goes offline, unless
// it connected elsewhere since, and its stream says why.
func (h *Hub) lost(node string, deviceIDs []string) {
	ev := ConnectionEvent{Protocol: "mqtt", Reason: "instance " + node + " of the hub stopped answering", At: h.opt.Now()}
	for _, id := range deviceIDs {
		h.setConnected(id, node, false)
		h.publishDevice(id, EventConnection, ev)
	}
}

// RememberPeer tells the hub, at start, that a device is connected to
// another instance of the cluster, so that it shows online until that
// instance says the connection closed.
func (h *Hub) RememberPeer(deviceID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.activityOf(deviceID)
	a.peer = anyPeer
	a.status = h.statusOf(a, h.opt.Now())
}

// Resync tells every client to reload what it shows: events from other
// instances were lost while the bus was down.
func (h *Hub) Resync() {
	h.publishAll(EventResync, struct{}{})
}
