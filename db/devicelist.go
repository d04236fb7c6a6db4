package db

import (
	"context"
	"fmt"
	"time"
)

// Orders of the fleet list (DeviceFilter.Sort). Ties are broken by device id
// in the same direction, so every order is total and pages never overlap.
const (
	DeviceSortID           = "id"
	DeviceSortName         = "name"   // letter case ignored
	DeviceSortStatus       = "status" // online, offline, disabled
	DeviceSortLastActivity = "lastActivity"
)

// ValidateDeviceSort accepts the orders a fleet list may name; "" is by id.
func ValidateDeviceSort(s string) error {
	switch s {
	case "", DeviceSortID, DeviceSortName, DeviceSortStatus, DeviceSortLastActivity:
		return nil
	}
	return invalid("sort", "unknown sort %q; use id, name, status or lastActivity", clipText(s, 40))
}

// Validate checks the filter's status and sort.
func (f DeviceFilter) Validate() error { return f.validate() }

func (f DeviceFilter) validate() error {
	if err := ValidateStatusFilter(f.Status); err != nil {
		return err
	}
	return ValidateDeviceSort(f.Sort)
}

// sortKey is the SQL expression f sorts by before the device id, with its
// arguments; "" when the device id alone is the order.
func (f DeviceFilter) sortKey(now time.Time) (string, []any) {
	switch f.Sort {
	case DeviceSortName:
		return `name COLLATE NOCASE`, nil
	case DeviceSortStatus:
		return `(CASE WHEN enabled = 0 THEN 2 WHEN ` + onlineSQL + ` THEN 0 ELSE 1 END)`, []any{OnlineCutoff(now)}
	case DeviceSortLastActivity:
		// Never heard from sorts as the oldest.
		return `COALESCE(last_activity_at, 0)`, nil
	}
	return "", nil
}

func orderBy(key string, desc bool) string {
	dir := ""
	if desc {
		dir = " DESC"
	}
	if key == "" {
		return "device_id" + dir
	}
	return key + dir + ", device_id" + dir
}

// exportBatch is how many devices EachDevice reads per query: each query
// is short, so a slow client of an export never holds a read snapshot open
// (which would stop WAL checkpoints) and memory stays bounded.
const exportBatch = 500

// EachDevice calls fn for every device matching f (Offset and Limit
// included), in f's order, reading in batches; the statuses of the filter
// and the order are taken at one instant, now. A device whose sort key
// changes during the walk may be met twice or not at all, as with pages.
func (d *DB) EachDevice(ctx context.Context, f DeviceFilter, now time.Time, fn func(Device) error) error {
	if err := f.validate(); err != nil {
		return err
	}
	where, args, err := f.where(now)
	if err != nil {
		return err
	}
	key, keyArgs := f.sortKey(now)
	if key == "" {
		key = "device_id" // the key column is read back as the cursor
	}
	cmp := ">"
	if f.Desc {
		cmp = "<"
	}
	after := " WHERE "
	if where != "" {
		after = " AND "
	}
	var (
		cursor  []any // sort key and device id of the last device seen
		left    = f.Limit
		offset  = max(f.Offset, 0)
		lastKey any
	)
	for {
		n := exportBatch
		if f.Limit > 0 {
			if left <= 0 {
				return nil
			}
			n = min(n, left)
		}
		q := `SELECT ` + DeviceColumns + `, ` + key + ` FROM devices` + where
		qargs := append([]any{}, keyArgs...) // the key expression comes first in the statement
		qargs = append(qargs, args...)
		if cursor != nil {
			q += after + `(` + key + `, device_id) ` + cmp + ` (?, ?)`
			qargs = append(qargs, keyArgs...)
			qargs = append(qargs, cursor...)
		}
		q += ` ORDER BY ` + orderBy(key, f.Desc)
		qargs = append(qargs, keyArgs...)
		q += fmt.Sprintf(" LIMIT %d", n)
		if cursor == nil && offset > 0 {
			q += fmt.Sprintf(" OFFSET %d", offset)
		}
		batch, err := d.deviceBatch(ctx, q, qargs, &lastKey)
		if err != nil {
			return err
		}
		for _, dev := range batch {
			if err := fn(dev); err != nil {
				return err
			}
		}
		if len(batch) < n {
			return nil
		}
		left -= len(batch)
		if b, ok := lastKey.([]byte); ok {
			lastKey = string(b) // bound as a blob it would sort after every text
		}
		cursor = []any{lastKey, batch[len(batch)-1].DeviceID}
	}
}

// deviceBatch runs one batch query of EachDevice; lastKey receives the sort
// key of its last row.
func (d *DB) deviceBatch(ctx context.Context, q string, args []any, lastKey *any) ([]Device, error) {
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		dev, err := ScanDevice(withExtra{rows, lastKey})
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, dev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// withExtra scans one more column after a device's.
type withExtra struct {
	s     Scanner
	extra any
}

func (w withExtra) Scan(dest ...any) error { return w.s.Scan(append(dest, w.extra)...) }
