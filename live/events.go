package live

import (
	"time"

	"fieldhub/alert"
	"fieldhub/commands"
	"fieldhub/jobs"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// The live event contract: every event type the streams carry and its
// payload, in one place. Other packages publish through the typed methods
// below, so a payload always matches its type. docs/api.md describes each
// event; the device page hands DeviceStreamEvents to the browser
// (data-stream-events), and TestBrowserListensToContractEvents checks the
// page scripts against this list.
const (
	// EventDevice (DeviceStatus): a device's status or activity, on the
	// fleet stream and the device's own, at most once per device per
	// ActivityInterval unless the status changes.
	EventDevice = "device"
	// EventStats (Stats): fleet statistics every StatsInterval.
	EventStats = "stats"
	// EventReading (ReadingEvent): the values one message carried for one instant.
	EventReading = "reading"
	// EventMessage (MessageEvent): a stored device-to-cloud message.
	EventMessage = "message"
	// EventCommand (CommandEvent): a cloud-to-device message's new state or
	// a direct method call's progress.
	EventCommand = "command"
	// EventTwin (commands.TwinView): the whole twin after a desired or
	// reported change.
	EventTwin = "twin"
	// EventConnection (ConnectionEvent): an MQTT connection opened or closed.
	EventConnection = "connection"
	// EventStorage (storage.Status): storage started or stopped failing,
	// on the fleet stream and every device stream.
	EventStorage = "storage"
	// EventJob (jobs.View): a job was created, started, made progress
	// (at most every 250 ms while it runs), was cancelled or finished, on
	// the jobs stream.
	EventJob = "job"
	// EventAlert (AlertEvent): an alert raised, repeated, acknowledged or
	// cleared, on the fleet stream and the device's own.
	EventAlert = "alert"
	// EventResync ({}): the client missed events that are no longer kept and
	// should reload what it shows.
	EventResync = "resync"
)

// FleetStreamEvents are the event types of the fleet stream.
var FleetStreamEvents = []string{EventDevice, EventStats, EventStorage, EventAlert, EventResync}

// JobStreamEvents are the event types of the jobs stream.
var JobStreamEvents = []string{EventJob, EventResync}

// DeviceStreamEvents are the event types of a device's stream.
var DeviceStreamEvents = []string{EventDevice, EventMessage, EventReading, EventCommand, EventTwin, EventConnection, EventStorage, EventAlert, EventResync}

// StatusDeleted is the status EventDevice announces for a deleted device,
// besides db.StatusOnline, db.StatusOffline and db.StatusDisabled.
const StatusDeleted = "deleted"

// DeviceStatus is the payload of EventDevice.
type DeviceStatus struct {
	ID           string     `json:"id"`
	Status       string     `json:"status,omitempty"`
	LastActivity *time.Time `json:"lastActivity,omitempty"`
}

// Stats is the payload of EventStats; the counts are there when the hub
// was given Options.Counts.
type Stats struct {
	MessagesPerMinute int64 `json:"messagesPerMinute"`
	Total             *int  `json:"total,omitempty"`
	Online            *int  `json:"online,omitempty"`
	Offline           *int  `json:"offline,omitempty"`
	Disabled          *int  `json:"disabled,omitempty"`
}

// ReadingEvent is the payload of EventReading.
type ReadingEvent struct {
	T int64              `json:"t"` // Unix milliseconds
	V map[string]float64 `json:"v"`
}

// MessageEvent is the payload of EventMessage: the message as the operator
// API lists it (telemetry.MessageView), so pages render both the same way,
// with its body cut at MaxLiveBody and its properties at MaxLiveProperties,
// plus its device, its size and whether it was cut.
type MessageEvent struct {
	telemetry.MessageView
	DeviceID  string `json:"deviceId"`
	Size      int    `json:"size"` // bytes of the whole body
	Truncated bool   `json:"truncated,omitempty"`
	// PropertiesTruncated says that Properties were cut at MaxLiveProperties.
	PropertiesTruncated bool `json:"propertiesTruncated,omitempty"`
}

// Kinds of EventCommand.
const (
	KindCloudMessage = "c2d"
	KindMethod       = "method"
)

// CommandEvent is the payload of EventCommand: Message for KindCloudMessage,
// Call for KindMethod.
type CommandEvent struct {
	Kind    string                     `json:"kind"`
	Message *commands.CloudMessageView `json:"message,omitempty"`
	Call    *commands.MethodCallView   `json:"call,omitempty"`
}

// ConnectionEvent is the payload of EventConnection.
type ConnectionEvent struct {
	Connected bool      `json:"connected"`
	Protocol  string    `json:"protocol"`
	Remote    string    `json:"remote,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
	// Node is the instance whose connection opened or closed, in a
	// cluster (--bus); "" on a single instance.
	Node string `json:"node,omitempty"`
}

// PublishCloudMessage announces a cloud-to-device message's new state on
// its device's stream (commands.Publisher).
func (h *Hub) PublishCloudMessage(v commands.CloudMessageView) {
	ev := CommandEvent{Kind: KindCloudMessage, Message: &v}
	h.publishDevice(v.DeviceID, EventCommand, ev)
	h.relay(PeerEvent{Type: EventCommand, Device: v.DeviceID, Command: &ev})
}

// PublishMethodCall announces a direct method call's progress (commands.Publisher).
func (h *Hub) PublishMethodCall(v commands.MethodCallView) {
	ev := CommandEvent{Kind: KindMethod, Call: &v}
	h.publishDevice(v.DeviceID, EventCommand, ev)
	h.relay(PeerEvent{Type: EventCommand, Device: v.DeviceID, Command: &ev})
}

// PublishTwin announces a device's twin after a change (commands.Publisher).
func (h *Hub) PublishTwin(v commands.TwinView) {
	h.publishDevice(v.DeviceID, EventTwin, v)
	h.relay(PeerEvent{Type: EventTwin, Device: v.DeviceID, Twin: &v})
}

// PublishStorage announces that storage started or stopped failing, on every
// stream (storage.NewHealth's listener).
func (h *Hub) PublishStorage(st storage.Status) {
	h.publishAll(EventStorage, st)
	h.relay(PeerEvent{Type: EventStorage, Storage: &st})
}

// PublishConnection announces an MQTT connection opening or closing (mqtt.Presence).
func (h *Hub) PublishConnection(deviceID string, ev ConnectionEvent) {
	h.publishDevice(deviceID, EventConnection, ev)
	h.relay(PeerEvent{Type: EventConnection, Device: deviceID, Connection: &ev})
}

// PublishJob announces a job's state and counts on the jobs stream (jobs.Publisher).
func (h *Hub) PublishJob(v jobs.View) {
	if h.isClosed() {
		return
	}
	h.publish(h.jobs, "", EventJob, v)
}

// AlertEvent is the payload of EventAlert: the alert as it stands, its
// rule's name, the open alerts of the fleet by severity after the change
// (for the count in every page's header) and the worst severity still open
// on the alert's device ("" for none; the fleet list's rows).
type AlertEvent struct {
	Alert       alert.Alert            `json:"alert"`
	RuleName    string                 `json:"ruleName"`
	Open        map[alert.Severity]int `json:"open"`
	DeviceWorst alert.Severity         `json:"deviceWorst"`
}

// PublishAlert announces an alert's change on the fleet stream and the
// device's (alerting.Publisher), here and on the other instances of a
// cluster. On the fleet stream it reaches clients that follow only some
// devices too: every page's header counts alerts.
func (h *Hub) PublishAlert(ev AlertEvent) {
	h.publishAlert(ev)
	h.relay(PeerEvent{Type: EventAlert, Device: ev.Alert.DeviceID, Alert: &ev})
}

func (h *Hub) publishAlert(ev AlertEvent) {
	h.publishFleet("", EventAlert, ev)
	h.publishDevice(ev.Alert.DeviceID, EventAlert, ev)
}
