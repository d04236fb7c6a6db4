package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrVersionMismatch refuses a desired patch made against an older version (If-Match).
var ErrVersionMismatch = errors.New("twin changed since it was read")

// Twin is a device's desired and reported properties. Tags are the device's
// operator-owned tags.
type Twin struct {
	DeviceID        string
	Tags            map[string]string
	Desired         map[string]any // numbers are json.Number, so they round-trip exactly
	DesiredVersion  int64
	Reported        map[string]any
	ReportedVersion int64
	UpdatedAt       time.Time // zero for a twin never written
}

// Twin sections, for PatchTwin.
const (
	TwinDesired  = "desired"
	TwinReported = "reported"
)

// Twin reads a device's twin; a twin never written is empty at version 1.
func (d *DB) Twin(ctx context.Context, deviceID string) (Twin, error) {
	dev, err := d.Device(ctx, deviceID)
	if err != nil {
		return Twin{}, err
	}
	tw, err := scanTwin(d.read.QueryRowContext(ctx, `SELECT desired, desired_version, reported, reported_version, updated_at
		FROM twins WHERE device_id = ?`, dev.ID))
	if err != nil {
		return Twin{}, fmt.Errorf("twin of %q: %w", deviceID, err)
	}
	tw.DeviceID, tw.Tags = dev.DeviceID, dev.Tags
	return tw, nil
}

func scanTwin(row *sql.Row) (Twin, error) {
	var (
		desired, reported string
		dv, rv, updated   int64
	)
	err := row.Scan(&desired, &dv, &reported, &rv, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return EmptyTwin(), nil
	}
	if err != nil {
		return Twin{}, err
	}
	return DecodeTwin(desired, reported, dv, rv, updated)
}

// DecodeObject parses a JSON object keeping numbers exact.
func DecodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return obj, nil
}

// MergePatch applies an RFC 7386 JSON merge patch to target in place and returns
// it: objects merge recursively, null deletes, anything else replaces.
func MergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(target, k)
		case map[string]any:
			tv, _ := target[k].(map[string]any)
			target[k] = MergePatch(tv, pv)
		default:
			target[k] = v
		}
	}
	return target
}

// PatchTwin merges patch (checked by commands.ParseTwinPatch) into one
// section (TwinDesired or TwinReported) of a device's twin and bumps that
// section's version. With ifVersion > 0 the patch is refused with
// ErrVersionMismatch unless the section is still at that version. A section
// larger than maxBytes of JSON after the merge is refused.
func (d *DB) PatchTwin(ctx context.Context, deviceID, section string, patch map[string]any, ifVersion int64, maxBytes int) (Twin, error) {
	if err := ValidateTwinSection(section); err != nil {
		return Twin{}, err
	}
	now := ms(d.Now())
	var tw Twin
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var (
			dev  Device
			err  error
			tags string
		)
		err = tx.QueryRowContext(ctx, `SELECT id, device_id, tags FROM devices WHERE device_id = ?`, deviceID).Scan(&dev.ID, &dev.DeviceID, &tags)
		if err := translate(err); err != nil {
			return fmt.Errorf("device %q: %w", deviceID, err)
		}
		if tw, err = scanTwin(tx.QueryRowContext(ctx, `SELECT desired, desired_version, reported, reported_version, updated_at
			FROM twins WHERE device_id = ?`, dev.ID)); err != nil {
			return err
		}
		tw.DeviceID = dev.DeviceID
		if tw.Tags, err = DecodeTags(dev.DeviceID, tags); err != nil {
			return err
		}
		if tw, err = tw.Patch(section, patch, ifVersion, maxBytes); err != nil {
			return err
		}
		desired, _ := json.Marshal(tw.Desired)
		reported, _ := json.Marshal(tw.Reported)
		tw.UpdatedAt = fromMS(now)
		_, err = tx.ExecContext(ctx, `INSERT INTO twins (device_id, desired, desired_version, reported, reported_version, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET desired = excluded.desired, desired_version = excluded.desired_version,
				reported = excluded.reported, reported_version = excluded.reported_version, updated_at = excluded.updated_at`,
			dev.ID, string(desired), tw.DesiredVersion, string(reported), tw.ReportedVersion, now)
		return err
	})
	if err != nil {
		return Twin{}, WrapUnlessNotFound(fmt.Sprintf("patch %s properties of %q", section, deviceID), err)
	}
	return tw, nil
}

// ValidateTwinSection accepts TwinDesired and TwinReported.
func ValidateTwinSection(section string) error {
	if section != TwinDesired && section != TwinReported {
		return invalid("section", "unknown twin section %q", section)
	}
	return nil
}

// Patch returns tw with patch merged into section (checked by
// ValidateTwinSection) and that section's version bumped: refused with
// ErrVersionMismatch when ifVersion > 0 and the section is at another
// version, and refused when the section would take more than maxBytes of
// JSON. Every store patches twins through it, holding the twin's row.
func (tw Twin) Patch(section string, patch map[string]any, ifVersion int64, maxBytes int) (Twin, error) {
	doc, version := &tw.Desired, &tw.DesiredVersion
	if section == TwinReported {
		doc, version = &tw.Reported, &tw.ReportedVersion
	}
	if ifVersion > 0 && ifVersion != *version {
		return Twin{}, fmt.Errorf("%s properties are at version %d, not %d; reload and try again: %w", section, *version, ifVersion, ErrVersionMismatch)
	}
	*doc = MergePatch(*doc, DeepCopy(patch))
	*version++
	enc, err := json.Marshal(*doc)
	if err != nil {
		return Twin{}, err
	}
	if len(enc) > maxBytes {
		return Twin{}, invalid(section, "%s properties would take %d bytes; at most %d are allowed", section, len(enc), maxBytes)
	}
	return tw, nil
}

// DecodeTwin reads a twin's stored columns.
func DecodeTwin(desired, reported string, desiredVersion, reportedVersion, updated int64) (Twin, error) {
	tw := Twin{DesiredVersion: desiredVersion, ReportedVersion: reportedVersion, UpdatedAt: fromMS(updated)}
	var err error
	if tw.Desired, err = DecodeObject([]byte(desired)); err != nil {
		return Twin{}, fmt.Errorf("bad desired column: %w", err)
	}
	if tw.Reported, err = DecodeObject([]byte(reported)); err != nil {
		return Twin{}, fmt.Errorf("bad reported column: %w", err)
	}
	return tw, nil
}

// EmptyTwin is the twin of a device never written: empty at version 1.
func EmptyTwin() Twin {
	return Twin{DesiredVersion: 1, ReportedVersion: 1, Desired: map[string]any{}, Reported: map[string]any{}}
}

// DeepCopy copies the objects of a decoded JSON value so the caller's patch is not
// aliased into the stored document.
func DeepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if child, ok := v.(map[string]any); ok {
			v = DeepCopy(child)
		}
		out[k] = v
	}
	return out
}
