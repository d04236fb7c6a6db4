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

// OnlineSQL is Online over a devices row, for every store (flags are 0 or
// 1, times Unix ms); cutoff is the placeholder of its one parameter,
// OnlineCutoff(now). TestOnlineSQLMatchesGo holds the two together.
func OnlineSQL(cutoff string) string {
	return `(connected = 1 OR (COALESCE(last_activity_at, 0) > ` + cutoff + ` AND last_activity_at > COALESCE(disconnected_at, 0)))`
}

// onlineSQL is OnlineSQL with SQLite's positional placeholder.
var onlineSQL = OnlineSQL("?")

// OnlineCutoff is onlineSQL's parameter (and every store's equivalent):
// activity after it is recent enough.
func OnlineCutoff(now time.Time) int64 { return ms(now.Add(-OnlineWindow)) }

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
