package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"fieldhub/auth"
	"fieldhub/storage"
)

// Device is a registered device.
type Device struct {
	ID           int64 // internal id
	DeviceID     string
	Name         string
	Tags         map[string]string
	PrimaryKey   string // "" for X.509 devices
	SecondaryKey string
	Auth         Authentication
	Enabled      bool
	Connected    bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastActivity time.Time // zero when never heard from
	// DisconnectedAt is when the device's last live (MQTT) connection closed:
	// a device that hangs up is offline at once, not after OnlineWindow.
	DisconnectedAt time.Time
}

// Keys returns the primary and secondary key, in that order; both are
// empty for an X.509 device, so no SAS token verifies.
func (d Device) Keys() []string { return []string{d.PrimaryKey, d.SecondaryKey} }

// Authentication is how a device proves who it is, as Azure IoT Hub's
// registry authentication object.
type Authentication struct {
	// Type is auth.AuthSAS, auth.AuthSelfSigned or
	// auth.AuthCertificateAuthority; "" means auth.AuthSAS on input.
	Type string
	// Thumbprints of a selfSigned device's certificates: upper-case hex
	// SHA-1 or SHA-256, the secondary optional. Empty for other types.
	PrimaryThumbprint, SecondaryThumbprint string
}

// X509 reports whether the device authenticates with a certificate.
func (a Authentication) X509() bool { return a.Type != auth.AuthSAS }

// X509Registration is what auth.VerifyDeviceCertificate checks a
// certificate of this device against.
func (d Device) X509Registration() auth.X509Registration {
	return auth.X509Registration{DeviceID: d.DeviceID, Type: d.Auth.Type,
		Thumbprints: [2]string{d.Auth.PrimaryThumbprint, d.Auth.SecondaryThumbprint}}
}

// normalize checks a and returns it with its thumbprints normalized.
func (a Authentication) normalize() (Authentication, error) {
	if a.Type == "" {
		a.Type = auth.AuthSAS
	}
	switch a.Type {
	case auth.AuthSelfSigned:
		if a.PrimaryThumbprint == "" {
			return a, invalid("authentication", "a selfSigned device needs the thumbprint of its certificate (primaryThumbprint)")
		}
		var err error
		if a.PrimaryThumbprint, err = auth.NormalizeThumbprint(a.PrimaryThumbprint); err != nil {
			return a, invalid("authentication", "primary %v", err)
		}
		if a.SecondaryThumbprint != "" {
			if a.SecondaryThumbprint, err = auth.NormalizeThumbprint(a.SecondaryThumbprint); err != nil {
				return a, invalid("authentication", "secondary %v", err)
			}
		}
	case auth.AuthSAS, auth.AuthCertificateAuthority:
		if a.PrimaryThumbprint != "" || a.SecondaryThumbprint != "" {
			return a, invalid("authentication", "thumbprints belong to selfSigned devices, not to %s ones", a.Type)
		}
	default:
		return a, invalid("authentication", "unknown authentication type %q; use sas, selfSigned or certificateAuthority", clipText(a.Type, 40))
	}
	return a, nil
}

// clipText shortens user input quoted in an error message.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// MaxDeviceIDLength is Azure IoT Hub's limit.
const MaxDeviceIDLength = 128

// ValidateDeviceID checks the Azure IoT Hub device id rules and says what is wrong.
func ValidateDeviceID(id string) error {
	if id == "" {
		return invalid("id", "device id is empty")
	}
	if len(id) > MaxDeviceIDLength {
		return invalid("id", "device id is %d characters long; at most %d are allowed", len(id), MaxDeviceIDLength)
	}
	// Azure allows them, but in a URL they are path segments that browsers
	// and proxies resolve away: the device's page and API paths would be
	// unreachable.
	if id == "." || id == ".." {
		return invalid("id", "device id %q is not allowed: in a URL it means the current or parent folder, so the device's pages could not be reached", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if strings.IndexByte("-.:+%_#*?!(),=@$'", c) >= 0 {
			continue
		}
		return invalid("id", "device id contains %q at position %d; allowed are ASCII letters, digits and - . : + %% _ # * ? ! ( ) , = @ $ '", c, i+1)
	}
	return nil
}

const maxTags = 64

func validateTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return invalid("tags", "%d tags; at most %d are allowed", len(tags), maxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 || strings.ContainsAny(k, "=,\n") {
			return invalid("tags", "tag name %q must be 1-128 characters without '=', ',' or newlines", k)
		}
		if len(v) > 512 || strings.ContainsAny(v, ",\n") {
			return invalid("tags", "value of tag %q must be at most 512 characters without ',' or newlines", k)
		}
	}
	return nil
}

// ParseTags reads "k=v, k2=v2" as typed in forms and the CLI.
func ParseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, invalid("tags", "%q is not key=value", part)
		}
		tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return tags, validateTags(tags)
}

// FormatTags writes tags as "k=v, k2=v2" in key order.
func FormatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ", ")
}

// NewDeviceKey returns 32 random bytes, base64-encoded, as Azure does.
func NewDeviceKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the OS is broken; nothing sane to do
	}
	return base64.StdEncoding.EncodeToString(b)
}

// NewDevice holds what CreateDevice needs.
type NewDevice struct {
	DeviceID string
	Name     string
	Tags     map[string]string
	// Auth is how it authenticates; the zero value is SAS keys.
	Auth Authentication
	// PrimaryKey and SecondaryKey are keys the caller chose (base64, as
	// the IoT Hub service API accepts them); "" gets a fresh one.
	PrimaryKey, SecondaryKey string
}

// Bounds of a device key chosen by a client, as on IoT Hub.
const (
	MinDeviceKeyBytes = 16
	MaxDeviceKeyBytes = 64
)

// ValidateDeviceKey checks a key a client chose (the service API, an
// import) as Azure IoT Hub does: base64 of 16 to 64 bytes, its length
// bounded before it is decoded. field names the key in the error.
func ValidateDeviceKey(field, key string) error {
	if len(key) > base64.StdEncoding.EncodedLen(MaxDeviceKeyBytes) {
		return invalid(field, "is longer than %d bytes once decoded; a key is %d to %d bytes", MaxDeviceKeyBytes, MinDeviceKeyBytes, MaxDeviceKeyBytes)
	}
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return invalid(field, "is not base64 (a key is %d to %d random bytes, base64-encoded)", MinDeviceKeyBytes, MaxDeviceKeyBytes)
	}
	if len(b) < MinDeviceKeyBytes || len(b) > MaxDeviceKeyBytes {
		return invalid(field, "is %d bytes long once decoded; a key is %d to %d bytes", len(b), MinDeviceKeyBytes, MaxDeviceKeyBytes)
	}
	return nil
}

// chooseKeys checks the keys a client chose, filling in fresh ones for
// those left empty.
func chooseKeys(primary, secondary string) (string, string, error) {
	out := [2]string{primary, secondary}
	for i, which := range [2]string{"primaryKey", "secondaryKey"} {
		if out[i] == "" {
			out[i] = NewDeviceKey()
		} else if err := ValidateDeviceKey(which, out[i]); err != nil {
			return "", "", err
		}
	}
	return out[0], out[1], nil
}

// MaxNameLength bounds the names of devices and API tokens.
const MaxNameLength = 200

// Prepare checks nd and returns the device to store at now, with fresh
// keys unless it authenticates with X.509; its ID is the store's to give.
// Every store creates devices through it.
func (nd NewDevice) Prepare(now time.Time) (Device, error) {
	if err := ValidateDeviceID(nd.DeviceID); err != nil {
		return Device{}, err
	}
	a, err := nd.Auth.normalize()
	if err != nil {
		return Device{}, err
	}
	if len(nd.Name) > MaxNameLength {
		return Device{}, invalid("name", "name is longer than %d characters", MaxNameLength)
	}
	if nd.Tags == nil {
		nd.Tags = map[string]string{}
	}
	if err := validateTags(nd.Tags); err != nil {
		return Device{}, err
	}
	dev := Device{
		DeviceID: nd.DeviceID, Name: nd.Name, Tags: nd.Tags, Auth: a,
		Enabled: true, CreatedAt: fromMS(ms(now)), UpdatedAt: fromMS(ms(now)),
	}
	if !a.X509() {
		if dev.PrimaryKey, dev.SecondaryKey, err = chooseKeys(nd.PrimaryKey, nd.SecondaryKey); err != nil {
			return Device{}, err
		}
	} else if nd.PrimaryKey != "" || nd.SecondaryKey != "" {
		return Device{}, invalid("authentication", "an X.509 device (%s) has no keys", a.Type)
	}
	return dev, nil
}

// EncodeTags is the tags column: a JSON object of string values.
func EncodeTags(tags map[string]string) string {
	b, _ := json.Marshal(tags)
	return string(b)
}

// DecodeTags reads the tags column.
func DecodeTags(deviceID, col string) (map[string]string, error) {
	tags := map[string]string{}
	if err := json.Unmarshal([]byte(col), &tags); err != nil {
		return nil, fmt.Errorf("device %s: bad tags column: %w", deviceID, err)
	}
	return tags, nil
}

// CreateDevice registers a device: with fresh keys, or without keys when it
// authenticates with X.509.
func (d *DB) CreateDevice(ctx context.Context, nd NewDevice) (Device, error) {
	dev, err := nd.Prepare(d.Now())
	if err != nil {
		return Device{}, err
	}
	a := dev.Auth
	res, err := d.write.ExecContext(ctx, `INSERT INTO devices
		(device_id, name, tags, primary_key, secondary_key, auth_type, primary_thumbprint, secondary_thumbprint, enabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		dev.DeviceID, dev.Name, EncodeTags(dev.Tags), dev.PrimaryKey, dev.SecondaryKey,
		a.Type, a.PrimaryThumbprint, a.SecondaryThumbprint, ms(dev.CreatedAt), ms(dev.UpdatedAt))
	if err := translate(err); err != nil {
		if err == storage.ErrConflict {
			return Device{}, fmt.Errorf("device %q: %w", nd.DeviceID, storage.ErrConflict)
		}
		return Device{}, fmt.Errorf("create device: %w", err)
	}
	dev.ID, _ = res.LastInsertId()
	return dev, nil
}

const DeviceColumns = `id, device_id, name, tags, primary_key, secondary_key, auth_type, primary_thumbprint, secondary_thumbprint,
	enabled, connected, created_at, updated_at, last_activity_at, disconnected_at`

type Scanner interface{ Scan(dest ...any) error }

func ScanDevice(s Scanner) (Device, error) {
	var (
		dev       Device
		tags      string
		created   int64
		updated   int64
		lastSeen  sql.NullInt64
		hungUp    sql.NullInt64
		enabled   int
		connected int
	)
	if err := s.Scan(&dev.ID, &dev.DeviceID, &dev.Name, &tags, &dev.PrimaryKey, &dev.SecondaryKey,
		&dev.Auth.Type, &dev.Auth.PrimaryThumbprint, &dev.Auth.SecondaryThumbprint, &enabled, &connected, &created, &updated, &lastSeen, &hungUp); err != nil {
		return Device{}, err
	}
	dev.Enabled, dev.Connected = enabled == 1, connected == 1
	dev.CreatedAt, dev.UpdatedAt, dev.LastActivity = fromMS(created), fromMS(updated), nullMS(lastSeen)
	dev.DisconnectedAt = nullMS(hungUp)
	var err error
	dev.Tags, err = DecodeTags(dev.DeviceID, tags)
	return dev, err
}

// CredentialsVersion is a number that changes whenever a device's keys,
// thumbprints, authentication type or enabled flag change, or a device is
// deleted, by whatever process (a trigger moves it): the registry's
// credential cache keeps entries while it stands still.
func (d *DB) CredentialsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := d.read.QueryRowContext(ctx, `SELECT version FROM credentials_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read credentials version: %w", err)
	}
	return v, nil
}

// Device finds a device by its device id.
func (d *DB) Device(ctx context.Context, deviceID string) (Device, error) {
	dev, err := ScanDevice(d.read.QueryRowContext(ctx, `SELECT `+DeviceColumns+` FROM devices WHERE device_id = ?`, deviceID))
	if err := translate(err); err != nil {
		return Device{}, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return dev, nil
}

// DeviceFilter selects devices for the fleet list.
type DeviceFilter struct {
	// Query is the fleet search (devicesearch.go): key=value terms match a
	// tag exactly, other terms a substring of the id, name or tags.
	Query  string
	Status string // "", online, offline, disabled
	Sort   string // DeviceSortID (default), DeviceSortName, DeviceSortStatus or DeviceSortLastActivity
	Desc   bool
	Offset int
	Limit  int // 0 = no limit
}

func (f DeviceFilter) where(now time.Time) (string, []any, error) {
	var conds []string
	var args []any
	terms, err := parseSearch(f.Query)
	if err != nil {
		return "", nil, err
	}
	if len(terms) > 0 {
		cond, targs := searchSQL(terms)
		conds = append(conds, cond)
		args = append(args, targs...)
	}
	cutoff := OnlineCutoff(now)
	switch f.Status {
	case StatusOnline:
		conds = append(conds, `enabled = 1 AND `+onlineSQL)
		args = append(args, cutoff)
	case StatusOffline:
		conds = append(conds, `enabled = 1 AND NOT `+onlineSQL)
		args = append(args, cutoff)
	case StatusDisabled:
		conds = append(conds, `enabled = 0`)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// EscapeLike escapes LIKE's wildcards in s for a pattern with ESCAPE '\'.
func EscapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ValidateStatusFilter accepts the statuses a fleet filter may name.
func ValidateStatusFilter(s string) error {
	switch s {
	case "", StatusOnline, StatusOffline, StatusDisabled:
		return nil
	}
	return invalid("status", "unknown status %q; use online, offline or disabled", s)
}

// Devices lists devices matching f in f's order, and how many match in all.
func (d *DB) Devices(ctx context.Context, f DeviceFilter) ([]Device, int, error) {
	if err := f.validate(); err != nil {
		return nil, 0, err
	}
	now := d.Now()
	where, args, err := f.where(now)
	if err != nil {
		return nil, 0, err
	}
	var total int
	if err := d.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count devices: %w", err)
	}
	key, keyArgs := f.sortKey(now)
	order := orderBy(key, f.Desc)
	args = append(args, keyArgs...)
	q := `SELECT ` + DeviceColumns + ` FROM devices` + where + ` ORDER BY ` + order
	if f.Limit > 0 {
		// Sort narrow rows (id and key) and read whole rows for the page
		// only: a deep page by name, status or last activity sorts the
		// fleet, and full rows with keys and tags make that slower.
		q = `SELECT ` + DeviceColumns + ` FROM devices WHERE id IN (SELECT id FROM devices` + where + ` ORDER BY ` + order +
			fmt.Sprintf(" LIMIT %d OFFSET %d", f.Limit, max(f.Offset, 0)) + `) ORDER BY ` + order
		args = append(args, keyArgs...)
	}
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		dev, err := ScanDevice(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, dev)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list devices: %w", err)
	}
	return out, total, nil
}

// FleetCounts is how many devices are in each status.
type FleetCounts struct {
	Online, Offline, Disabled int
	// Connected are the enabled devices with a live MQTT connection (to
	// any instance), among Online; the rest of Online were heard from over
	// HTTPS within OnlineWindow.
	Connected int
}

// FleetCounts counts devices by status.
func (d *DB) FleetCounts(ctx context.Context) (FleetCounts, error) {
	var c FleetCounts
	cutoff := OnlineCutoff(d.Now())
	err := d.read.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(enabled = 1 AND `+onlineSQL+`), 0),
		COALESCE(SUM(enabled = 1 AND NOT `+onlineSQL+`), 0),
		COALESCE(SUM(enabled = 0), 0),
		COALESCE(SUM(enabled = 1 AND connected = 1), 0) FROM devices`, cutoff, cutoff).Scan(&c.Online, &c.Offline, &c.Disabled, &c.Connected)
	if err != nil {
		return c, fmt.Errorf("count fleet: %w", err)
	}
	return c, nil
}

// DeviceUpdate changes a device's editable fields; nil fields stay as they are.
type DeviceUpdate struct {
	Name    *string
	Tags    map[string]string // nil = unchanged
	Enabled *bool
	// Auth changes how the device authenticates. Switching to X.509 drops
	// its keys; switching back to SAS gives it fresh ones.
	Auth *Authentication
	// Keys sets a SAS device's primary and secondary key to keys a client
	// chose (the IoT Hub service API); an empty entry keeps that key, or
	// gives a fresh one to a device switching to SAS.
	Keys *[2]string
}

// Check validates u and returns it with its authentication normalized;
// every store checks an update through it before reading the device.
func (u DeviceUpdate) Check() (DeviceUpdate, error) {
	if u.Name != nil && len(*u.Name) > MaxNameLength {
		return u, invalid("name", "name is longer than %d characters", MaxNameLength)
	}
	if u.Tags != nil {
		if err := validateTags(u.Tags); err != nil {
			return u, err
		}
	}
	if u.Auth != nil {
		a, err := u.Auth.normalize()
		if err != nil {
			return u, err
		}
		u.Auth = &a
	}
	if u.Keys != nil {
		if u.Auth != nil && u.Auth.X509() && (u.Keys[0] != "" || u.Keys[1] != "") {
			return u, invalid("authentication", "an X.509 device (%s) has no keys", u.Auth.Type)
		}
		for i, which := range [2]string{"primaryKey", "secondaryKey"} {
			if u.Keys[i] != "" {
				if err := ValidateDeviceKey(which, u.Keys[i]); err != nil {
					return u, err
				}
			}
		}
	}
	return u, nil
}

// Apply returns dev changed by u (checked), updated at now: keys are
// dropped when it switches to X.509 and fresh ones made when it switches
// back to SAS.
func (u DeviceUpdate) Apply(dev Device, now time.Time) Device {
	if u.Name != nil {
		dev.Name = *u.Name
	}
	if u.Tags != nil {
		dev.Tags = u.Tags
	}
	if u.Enabled != nil {
		dev.Enabled = *u.Enabled
	}
	if u.Auth != nil {
		switch {
		case u.Auth.X509():
			dev.PrimaryKey, dev.SecondaryKey = "", ""
		case dev.Auth.X509():
			dev.PrimaryKey, dev.SecondaryKey = NewDeviceKey(), NewDeviceKey()
		}
		dev.Auth = *u.Auth
	}
	if u.Keys != nil && !dev.Auth.X509() {
		if u.Keys[0] != "" {
			dev.PrimaryKey = u.Keys[0]
		}
		if u.Keys[1] != "" {
			dev.SecondaryKey = u.Keys[1]
		}
	}
	dev.UpdatedAt = fromMS(ms(now))
	return dev
}

// UpdateDevice applies u and returns the device as stored.
func (d *DB) UpdateDevice(ctx context.Context, deviceID string, u DeviceUpdate) (Device, error) {
	u, err := u.Check()
	if err != nil {
		return Device{}, err
	}
	var dev Device
	err = d.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		if dev, err = ScanDevice(tx.QueryRowContext(ctx, `SELECT `+DeviceColumns+` FROM devices WHERE device_id = ?`, deviceID)); err != nil {
			return translate(err)
		}
		dev = u.Apply(dev, d.Now())
		_, err = tx.ExecContext(ctx, `UPDATE devices SET name = ?, tags = ?, enabled = ?, primary_key = ?, secondary_key = ?,
			auth_type = ?, primary_thumbprint = ?, secondary_thumbprint = ?, updated_at = ? WHERE id = ?`,
			dev.Name, EncodeTags(dev.Tags), dev.Enabled, dev.PrimaryKey, dev.SecondaryKey,
			dev.Auth.Type, dev.Auth.PrimaryThumbprint, dev.Auth.SecondaryThumbprint, ms(dev.UpdatedAt), dev.ID)
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("update device %q: %w", deviceID, err)
	}
	return dev, nil
}

// Key names for RotateDeviceKey.
const (
	PrimaryKey   = "primary"
	SecondaryKey = "secondary"
)

// KeyColumn is the column of a key named for RotateDeviceKey.
func KeyColumn(which string) (string, error) {
	switch which {
	case PrimaryKey:
		return "primary_key", nil
	case SecondaryKey:
		return "secondary_key", nil
	}
	return "", invalid("key", "unknown key %q; use primary or secondary", which)
}

// NoKeysError refuses to rotate a key of an X.509 device.
func NoKeysError(dev Device) error {
	return invalid("key", "device %q authenticates with X.509 certificates (%s); it has no keys to rotate", dev.DeviceID, dev.Auth.Type)
}

// RotateDeviceKey replaces one key with a fresh one and returns the device.
func (d *DB) RotateDeviceKey(ctx context.Context, deviceID, which string) (Device, error) {
	col, err := KeyColumn(which)
	if err != nil {
		return Device{}, err
	}
	res, err := d.write.ExecContext(ctx, `UPDATE devices SET `+col+` = ?, updated_at = ? WHERE device_id = ? AND auth_type = 'sas'`,
		NewDeviceKey(), ms(d.Now()), deviceID)
	if err != nil {
		return Device{}, fmt.Errorf("rotate key of %q: %w", deviceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		dev, err := d.deviceFromWriter(ctx, deviceID)
		if err != nil {
			return Device{}, err
		}
		return Device{}, NoKeysError(dev)
	}
	return d.deviceFromWriter(ctx, deviceID)
}

// deviceFromWriter reads through the writer so a caller sees its own write at once.
func (d *DB) deviceFromWriter(ctx context.Context, deviceID string) (Device, error) {
	dev, err := ScanDevice(d.write.QueryRowContext(ctx, `SELECT `+DeviceColumns+` FROM devices WHERE device_id = ?`, deviceID))
	if err := translate(err); err != nil {
		return Device{}, fmt.Errorf("device %q: %w", deviceID, err)
	}
	return dev, nil
}

// deleteMessagesBatch bounds the messages DeleteDevice deletes in one
// transaction before the last, so that deleting a device with a long
// history holds the single writer (and ingest) a few milliseconds at a time.
const deleteMessagesBatch = 5000

// DeleteDevice removes a device and everything stored for it: its messages
// through message_index and the log's unindexed tail (the log has no foreign
// key to devices, migration 0017), the rest through foreign keys. The
// indexed messages go in batches first; the last transaction deletes what
// remains with the device, so that a device created later under the same
// internal id never sees them.
func (d *DB) DeleteDevice(ctx context.Context, deviceID string) error {
	for {
		var more bool
		err := d.withTx(ctx, func(tx *sql.Tx) error {
			var err error
			more, err = deleteIndexedMessages(ctx, tx, deviceID, deleteMessagesBatch)
			return err
		})
		if err != nil {
			return fmt.Errorf("delete messages of device %q: %w", deviceID, err)
		}
		if !more {
			break
		}
	}
	return d.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := deleteIndexedMessages(ctx, tx, deviceID, -1); err != nil {
			return fmt.Errorf("delete messages of device %q: %w", deviceID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages
			WHERE id > (SELECT through FROM message_index_state WHERE id = 1)
			AND device_id = (SELECT id FROM devices WHERE device_id = ?)`, deviceID); err != nil {
			return fmt.Errorf("delete messages of device %q: %w", deviceID, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE device_id = ?`, deviceID)
		if err != nil {
			return fmt.Errorf("delete device %q: %w", deviceID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("device %q: %w", deviceID, storage.ErrNotFound)
		}
		return nil
	})
}

// deleteIndexedMessages deletes at least limit of the device's messages
// that message_index holds (limit < 0: all), oldest bucket first (migration
// 0019), from the log and the index, and each bucket's entry in
// message_index_buckets once the bucket holds none of the device's. It
// reports whether any are left.
func deleteIndexedMessages(ctx context.Context, tx *sql.Tx, deviceID string, limit int) (more bool, err error) {
	const batch = `SELECT id FROM message_index WHERE bucket = ?1 AND device_id = ?2 ORDER BY id LIMIT ?3`
	for deleted := int64(0); limit < 0 || deleted < int64(limit); {
		var devID, bucket int64
		err := tx.QueryRowContext(ctx, `SELECT device_id, bucket FROM message_index_buckets
			WHERE device_id = (SELECT id FROM devices WHERE device_id = ?) ORDER BY bucket LIMIT 1`, deviceID).Scan(&devID, &bucket)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("find the oldest bucket: %w", err)
		}
		n := int64(limit) - deleted
		if limit < 0 {
			n = -1
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id IN (`+batch+`)`, bucket, devID, n); err != nil {
			return false, err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM message_index WHERE bucket = ?1 AND device_id = ?2 AND id IN (`+batch+`)`, bucket, devID, n)
		if err != nil {
			return false, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return false, err
		}
		deleted += k
		if _, err := tx.ExecContext(ctx, `DELETE FROM message_index_buckets WHERE device_id = ?1 AND bucket = ?2
			AND NOT EXISTS (SELECT 1 FROM message_index WHERE bucket = ?2 AND device_id = ?1)`, devID, bucket); err != nil {
			return false, err
		}
	}
	return true, nil
}

// ResetConnections marks every device disconnected; called at start, since no
// connection survives a restart.
func (d *DB) ResetConnections(ctx context.Context) error {
	if _, err := d.write.ExecContext(ctx, `UPDATE devices SET connected = 0, disconnected_at = last_activity_at WHERE connected = 1`); err != nil {
		return fmt.Errorf("reset connections: %w", err)
	}
	return nil
}
