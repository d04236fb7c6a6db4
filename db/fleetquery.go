package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"fieldhub/query"
)

// A fleet query selects devices by a condition of the device query language
// (package query) over each device's document: DeviceDocument says what the
// document holds, and a store compiles the condition to SQL over its own
// columns that gives the same answer (db/storetest's FleetQuery suite
// checks both against each other).

// DeviceQuery is one page of a fleet query: the devices whose document
// matches Where (nil: every device), in device id order, after the device
// id After ("" from the start), at most Limit of them.
type DeviceQuery struct {
	Where query.Cond
	After string
	Limit int
}

// MaxQueryPage bounds DeviceQuery.Limit.
const MaxQueryPage = 1000

// QueriedDevice is a device a fleet query selected, with its twin.
type QueriedDevice struct {
	Device Device
	Twin   Twin
}

// DeviceDocument is the device document fleet queries see: Azure IoT Hub's
// device twin fields (deviceId, status "enabled" or "disabled",
// connectionState "Connected" while the device holds a live MQTT
// connection, lastActivityTime as ISO 8601 UTC with milliseconds when it
// was ever heard from, authenticationType, tags, properties.desired and
// properties.reported each with its $version) and Fieldhub's own: name and
// online (the one online rule at now, whether or not the device is
// enabled). Every store's SQL must select exactly the devices whose
// document matches.
func DeviceDocument(d Device, tw Twin, now time.Time) map[string]any {
	status, conn := "disabled", "Disconnected"
	if d.Enabled {
		status = "enabled"
	}
	if d.Connected {
		conn = "Connected"
	}
	tags := make(map[string]any, len(d.Tags))
	for k, v := range d.Tags {
		tags[k] = v
	}
	doc := map[string]any{
		"deviceId": d.DeviceID, "name": d.Name, "status": status, "connectionState": conn,
		"online":             Online(d.Connected, d.LastActivity, d.DisconnectedAt, now),
		"authenticationType": d.Auth.Type,
		"tags":               tags,
		"properties": map[string]any{
			"desired":  withVersion(tw.Desired, tw.DesiredVersion),
			"reported": withVersion(tw.Reported, tw.ReportedVersion),
		},
	}
	if !d.LastActivity.IsZero() {
		doc["lastActivityTime"] = d.LastActivity.UTC().Format(LastActivityFormat)
	}
	return doc
}

// LastActivityFormat is how the device document writes lastActivityTime.
const LastActivityFormat = "2006-01-02T15:04:05.000Z"

func withVersion(section map[string]any, version int64) map[string]any {
	out := make(map[string]any, len(section)+1)
	for k, v := range section {
		out[k] = v
	}
	out["$version"] = json.Number(strconv.FormatInt(version, 10))
	return out
}

// fleetMapper maps the device document onto devices d LEFT JOIN twins t;
// cutoff is OnlineCutoff(now), pasted as a number (it is ours, not the
// query's).
func fleetMapper(cutoff int64) query.FieldMapper {
	// onlineSQL over d; TestFleetOnlineSQL holds the two together.
	online := "(d.connected = 1 OR (COALESCE(d.last_activity_at, 0) > " + strconv.FormatInt(cutoff, 10) +
		" AND d.last_activity_at > COALESCE(d.disconnected_at, 0)))"
	return query.FieldMapper{
		"deviceId":           {Expr: "d.device_id", Type: query.String},
		"name":               {Expr: "d.name", Type: query.String},
		"status":             {Expr: "CASE WHEN d.enabled = 1 THEN 'enabled' ELSE 'disabled' END", Type: query.String},
		"connectionState":    {Expr: "CASE WHEN d.connected = 1 THEN 'Connected' ELSE 'Disconnected' END", Type: query.String},
		"online":             {Expr: online, Type: query.Bool},
		"authenticationType": {Expr: "d.auth_type", Type: query.String},
		// Whole milliseconds, exactly as LastActivityFormat writes them.
		"lastActivityTime": {Expr: "strftime('%Y-%m-%dT%H:%M:%S', d.last_activity_at / 1000, 'unixepoch') || printf('.%03dZ', d.last_activity_at % 1000)",
			Type: query.String},
		"tags":                         {Expr: "d.tags", Type: query.JSON},
		"properties.desired":           {Expr: "COALESCE(t.desired, '{}')", Type: query.JSON},
		"properties.desired.$version":  {Expr: "COALESCE(t.desired_version, 1)", Type: query.Number},
		"properties.reported":          {Expr: "COALESCE(t.reported, '{}')", Type: query.JSON},
		"properties.reported.$version": {Expr: "COALESCE(t.reported_version, 1)", Type: query.Number},
	}
}

// QueriedColumns are the columns of devices d LEFT JOIN twins t that
// ScanQueried reads, for every store.
const QueriedColumns = `d.id, d.device_id, d.name, d.tags, d.primary_key, d.secondary_key, d.auth_type, d.primary_thumbprint,
	d.secondary_thumbprint, d.enabled, d.connected, d.created_at, d.updated_at, d.last_activity_at, d.disconnected_at,
	t.desired, t.desired_version, t.reported, t.reported_version, t.updated_at`

// QueryDevices runs one page of a fleet query. The condition runs in SQL,
// so ctx's deadline bounds the scan.
func (d *DB) QueryDevices(ctx context.Context, q DeviceQuery) ([]QueriedDevice, error) {
	if q.Limit < 1 || q.Limit > MaxQueryPage {
		return nil, invalid("pageSize", "page size must be from 1 to %d, got %d", MaxQueryPage, q.Limit)
	}
	where, args, err := query.CondSQL(q.Where, query.SQLite, fleetMapper(OnlineCutoff(d.Now())))
	if err != nil {
		return nil, fmt.Errorf("compile fleet query: %w", err)
	}
	rows, err := d.read.QueryContext(ctx, `SELECT `+QueriedColumns+` FROM devices d LEFT JOIN twins t ON t.device_id = d.id
		WHERE d.device_id > ? AND `+where+` ORDER BY d.device_id LIMIT ?`, append(append([]any{q.After}, args...), q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("fleet query: %w", err)
	}
	defer rows.Close()
	var out []QueriedDevice
	for rows.Next() {
		qd, err := ScanQueried(rows)
		if err != nil {
			return nil, fmt.Errorf("fleet query: %w", err)
		}
		out = append(out, qd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet query: %w", err)
	}
	return out, nil
}

// ScanQueried reads a row of QueriedColumns.
func ScanQueried(rows Scanner) (QueriedDevice, error) {
	var (
		dev                Device
		tags               string
		created, updated   int64
		lastSeen, hungUp   sql.NullInt64
		enabled, connected int
		desired, reported  sql.NullString
		dVersion, rVersion sql.NullInt64
		twinUpdated        sql.NullInt64
	)
	if err := rows.Scan(&dev.ID, &dev.DeviceID, &dev.Name, &tags, &dev.PrimaryKey, &dev.SecondaryKey,
		&dev.Auth.Type, &dev.Auth.PrimaryThumbprint, &dev.Auth.SecondaryThumbprint, &enabled, &connected, &created, &updated,
		&lastSeen, &hungUp, &desired, &dVersion, &reported, &rVersion, &twinUpdated); err != nil {
		return QueriedDevice{}, err
	}
	dev.Enabled, dev.Connected = enabled == 1, connected == 1
	dev.CreatedAt, dev.UpdatedAt, dev.LastActivity = fromMS(created), fromMS(updated), nullMS(lastSeen)
	dev.DisconnectedAt = nullMS(hungUp)
	dev.Tags = map[string]string{}
	if err := json.Unmarshal([]byte(tags), &dev.Tags); err != nil {
		return QueriedDevice{}, fmt.Errorf("device %s: bad tags column: %w", dev.DeviceID, err)
	}
	tw := Twin{DeviceID: dev.DeviceID, Tags: dev.Tags, DesiredVersion: 1, ReportedVersion: 1,
		Desired: map[string]any{}, Reported: map[string]any{}}
	if desired.Valid {
		var err error
		tw.DesiredVersion, tw.ReportedVersion, tw.UpdatedAt = dVersion.Int64, rVersion.Int64, nullMS(twinUpdated)
		if tw.Desired, err = DecodeObject([]byte(desired.String)); err != nil {
			return QueriedDevice{}, fmt.Errorf("device %s: bad desired column: %w", dev.DeviceID, err)
		}
		if tw.Reported, err = DecodeObject([]byte(reported.String)); err != nil {
			return QueriedDevice{}, fmt.Errorf("device %s: bad reported column: %w", dev.DeviceID, err)
		}
	}
	return QueriedDevice{Device: dev, Twin: tw}, nil
}
