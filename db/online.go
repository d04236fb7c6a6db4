package db

import "time"

// The one rule for when a device is online, in Go and in SQL. Pages, the
// API, the CLI and the live streams all decide through Online (or the SQL
// beside it), so they never disagree about a device.

// OnlineWindow is how recently a device must have been heard from to count as
// online when it has no live connection.
const OnlineWindow = 2 * time.Minute

// Device statuses shown to operators.
const (
	StatusOnline   = "online"
	StatusOffline  = "offline"
	StatusDisabled = "disabled"
)

// Online reports whether a device counts as online at now: it holds a live
// (MQTT) connection, or its last message is less than OnlineWindow old and
// came after its last connection closed — a device that hangs up is offline
// at once, not after the window.
func Online(connected bool, lastActivity, disconnectedAt, now time.Time) bool {
	return connected || (!lastActivity.IsZero() && now.Sub(lastActivity) < OnlineWindow && lastActivity.After(disconnectedAt))
}

// onlineSQL is Online over a devices row; its one parameter is
// onlineCutoff(now). TestOnlineSQLMatchesGo holds the two together.
const onlineSQL = `(connected = 1 OR (COALESCE(last_activity_at, 0) > ? AND last_activity_at > COALESCE(disconnected_at, 0)))`

// onlineCutoff is onlineSQL's parameter: activity after it is recent enough.
func onlineCutoff(now time.Time) int64 { return ms(now.Add(-OnlineWindow)) }

// Status is online, offline or disabled at time now.
func (d Device) Status(now time.Time) string {
	switch {
	case !d.Enabled:
		return StatusDisabled
	case Online(d.Connected, d.LastActivity, d.DisconnectedAt, now):
		return StatusOnline
	default:
		return StatusOffline
	}
}
