package db

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"

	"fieldhub/alert"
	"fieldhub/storage"
)

// Bounds of webhooks and their outbox.
const (
	MaxWebhooks          = 20
	MaxWebhookURL        = 2048 // bytes
	MinWebhookSecret     = 16   // bytes: an HMAC key worth the name
	MaxWebhookSecret     = 256  // bytes
	MaxPendingDeliveries = 1000 // per hook; beyond, new deliveries are dropped (and logged as such)
	MaxDeliveriesListed  = 200
)

// Webhook formats.
const (
	WebhookJSON  = "json"
	WebhookSlack = "slack"
)

// Delivery states: pending (waiting for its next attempt), delivered,
// failed (given up after the retry policy's hour, or its hook was
// disabled), dropped (the hook's outbox was full).
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
	DeliveryDropped   = "dropped"
)

// Webhook is a subscription: deliveries of the events it names, signed
// with its secret, POSTed to its URL.
type Webhook struct {
	ID             int64
	URL            string
	Secret         string
	Events         []alert.EventType
	Format         string
	Enabled        bool
	DisabledReason string    // why the hub disabled it ("" when an admin did, or it is enabled)
	FailingSince   time.Time // zero when its last delivery succeeded
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Wants reports whether the hook subscribes to an event type.
func (w Webhook) Wants(t alert.EventType) bool { return slices.Contains(w.Events, t) }

// NewWebhook is what an admin gives to subscribe.
type NewWebhook struct {
	URL    string
	Secret string
	Events []alert.EventType
	Format string // "" is json
}

// Validate checks every field and says which one is wrong.
func (n *NewWebhook) Validate() error {
	if n.Format == "" {
		n.Format = WebhookJSON
	}
	switch {
	case len(n.URL) > MaxWebhookURL:
		return invalid("url", "is %d bytes; at most %d", len(n.URL), MaxWebhookURL)
	case len(n.Secret) < MinWebhookSecret || len(n.Secret) > MaxWebhookSecret:
		return invalid("secret", "must be %d to %d bytes, got %d", MinWebhookSecret, MaxWebhookSecret, len(n.Secret))
	case !utf8.ValidString(n.Secret):
		return invalid("secret", "must be UTF-8 text")
	case n.Format != WebhookJSON && n.Format != WebhookSlack:
		return invalid("format", "%q is not a format; use json or slack", n.Format)
	case len(n.Events) == 0:
		return invalid("events", "name at least one of alert.raised, alert.acknowledged, alert.cleared")
	}
	u, err := url.Parse(n.URL)
	switch {
	case err != nil:
		return invalid("url", "is not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return invalid("url", "must be http or https, got %q", u.Scheme)
	case u.Hostname() == "":
		return invalid("url", "has no host")
	case u.User != nil:
		return invalid("url", "must not carry a user name or password; the signature authenticates the hub")
	}
	seen := map[alert.EventType]bool{}
	for _, e := range n.Events {
		if !e.Valid() {
			return invalid("events", "%q is not an event; use alert.raised, alert.acknowledged or alert.cleared", e)
		}
		if seen[e] {
			return invalid("events", "%q is named twice", e)
		}
		seen[e] = true
	}
	return nil
}

// CreateWebhook stores a subscription, enabled; beyond MaxWebhooks it is refused.
func (d *DB) CreateWebhook(ctx context.Context, n NewWebhook) (Webhook, error) {
	if err := n.Validate(); err != nil {
		return Webhook{}, err
	}
	events, _ := json.Marshal(n.Events)
	now := d.Now()
	w := Webhook{URL: n.URL, Secret: n.Secret, Events: n.Events, Format: n.Format, Enabled: true, CreatedAt: fromMS(ms(now)), UpdatedAt: fromMS(ms(now))}
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhooks`).Scan(&count); err != nil {
			return err
		}
		if count >= MaxWebhooks {
			return invalid("webhooks", "there are %d webhooks already; at most %d are allowed", count, MaxWebhooks)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO webhooks (url, secret, events, format, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, 1, ?, ?)`, n.URL, n.Secret, string(events), n.Format, ms(now), ms(now))
		if err != nil {
			return err
		}
		w.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	return w, nil
}

// WebhookColumns are the columns ScanWebhook reads.
const WebhookColumns = `id, url, secret, events, format, enabled, disabled_reason, failing_since, created_at, updated_at`

// Webhooks lists every subscription by id.
func (d *DB) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+WebhookColumns+` FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	out := []Webhook{}
	for rows.Next() {
		w, err := ScanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// Webhook reads one subscription.
func (d *DB) Webhook(ctx context.Context, id int64) (Webhook, error) {
	w, err := ScanWebhook(d.read.QueryRowContext(ctx, `SELECT `+WebhookColumns+` FROM webhooks WHERE id = ?`, id))
	if err != nil {
		return Webhook{}, fmt.Errorf("webhook %d: %w", id, err)
	}
	return w, nil
}

// SetWebhookEnabled enables or disables a hook. reason says why the hub
// disabled it ("" for an admin's decision); enabling clears it and the
// failure streak. Disabling fails its pending deliveries.
func (d *DB) SetWebhookEnabled(ctx context.Context, id int64, enabled bool, reason string) (Webhook, error) {
	now := ms(d.Now())
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		if enabled {
			reason = ""
		}
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET enabled = ?, disabled_reason = ?,
			failing_since = CASE WHEN ? THEN NULL ELSE failing_since END, updated_at = ? WHERE id = ?`,
			enabled, CutDetail(reason), enabled, now, id)
		if err := rowsChanged(res, err); err != nil {
			return err
		}
		if !enabled {
			_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'failed', last_error = 'the webhook was disabled', updated_at = ?
				WHERE webhook_id = ? AND state = 'pending'`, now, id)
		}
		return err
	})
	if err != nil {
		return Webhook{}, fmt.Errorf("set webhook %d enabled: %w", id, err)
	}
	return d.Webhook(ctx, id)
}

// DeleteWebhook deletes a hook with its deliveries.
func (d *DB) DeleteWebhook(ctx context.Context, id int64) error {
	res, err := d.write.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	if err := rowsChanged(res, err); err != nil {
		return fmt.Errorf("delete webhook %d: %w", id, err)
	}
	return nil
}

// ScanWebhook reads a row of WebhookColumns.
func ScanWebhook(row interface{ Scan(...any) error }) (Webhook, error) {
	var (
		w                Webhook
		events           string
		failing          sql.NullInt64
		created, updated int64
	)
	if err := row.Scan(&w.ID, &w.URL, &w.Secret, &events, &w.Format, &w.Enabled, &w.DisabledReason, &failing, &created, &updated); err != nil {
		return Webhook{}, translate(err)
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return Webhook{}, fmt.Errorf("webhook %d: events: %w", w.ID, err)
	}
	w.FailingSince, w.CreatedAt, w.UpdatedAt = nullMS(failing), fromMS(created), fromMS(updated)
	return w, nil
}

// Delivery is one event on its way to one hook: a row of the durable
// outbox, kept after its outcome as the hook's delivery log.
type Delivery struct {
	ID             int64
	WebhookID      int64
	EventID        string
	EventType      alert.EventType
	AlertID        int64
	Payload        []byte // the event's JSON, without its send time
	State          string
	Attempts       int
	NextAt         time.Time
	FirstFailureAt time.Time
	LastStatus     int    // HTTP status of the last attempt; 0 for none or no answer
	LastError      string // why the last attempt failed
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// QueueDelivery adds a delivery to a hook's outbox, due now. A hook with
// MaxPendingDeliveries waiting gets it as dropped, so that a flood of
// alerts cannot grow the outbox without bound, and the log says so.
func (d *DB) QueueDelivery(ctx context.Context, dl Delivery) (Delivery, error) {
	now := d.Now()
	dl.State, dl.Attempts, dl.NextAt, dl.CreatedAt, dl.UpdatedAt = DeliveryPending, 0, fromMS(ms(now)), fromMS(ms(now)), fromMS(ms(now))
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var pending int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = ? AND state = 'pending'`, dl.WebhookID).Scan(&pending); err != nil {
			return err
		}
		if pending >= MaxPendingDeliveries {
			dl.State, dl.LastError = DeliveryDropped, fmt.Sprintf("the outbox of this webhook holds %d deliveries already", pending)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, alert_id, payload, state, next_at, last_error, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, dl.WebhookID, dl.EventID, string(dl.EventType), dl.AlertID, string(dl.Payload), dl.State, ms(now), dl.LastError, ms(now), ms(now))
		if err != nil {
			return translate(err)
		}
		dl.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("queue delivery to webhook %d: %w", dl.WebhookID, err)
	}
	return dl, nil
}

// DeliveryColumns are the columns ScanDelivery reads.
const DeliveryColumns = `id, webhook_id, event_id, event_type, alert_id, payload, state, attempts, next_at, first_failure_at, last_status, last_error, created_at, updated_at`

// Claim is who takes a hook's due deliveries to send them, and until when.
// Instances sharing a store send each delivery once: a claimer gets nothing
// while another's claim on any pending delivery of the hook holds (which
// also keeps a hook's deliveries in order), and takes over what another
// claimed once that claim ran out (its instance died while sending). A
// claimer's own claims never stand in its way: it claims them again.
type Claim struct {
	By    string    // the claiming instance (its --node; "" for a lone hub)
	Now   time.Time // deliveries due by now; claims that ended by now are void
	Until time.Time // the claim holds until then
}

// ClaimDeliveries claims at most limit pending deliveries of a hook due at
// c.Now, in the order they were queued, and returns them; none while
// another claimer's claim holds (see Claim).
func (d *DB) ClaimDeliveries(ctx context.Context, webhookID int64, c Claim, limit int) ([]Delivery, error) {
	var out []Delivery
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ?
			WHERE id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ? AND state = 'pending' AND next_at <= ? ORDER BY id LIMIT ?)
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE webhook_id = ? AND state = 'pending' AND claimed_by <> ? AND claimed_until > ?)
			RETURNING `+DeliveryColumns,
			c.By, ms(c.Until), webhookID, ms(c.Now), limit, webhookID, c.By, ms(c.Now))
		if err != nil {
			return err
		}
		out, err = scanDeliveries(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of webhook %d: %w", webhookID, err)
	}
	slices.SortFunc(out, func(a, b Delivery) int { return cmp.Compare(a.ID, b.ID) }) // RETURNING has no order
	return out, nil
}

// ReleaseDeliveries gives up by's claims on a hook's deliveries (those it
// did not send), so that another instance need not wait for them to run out.
func (d *DB) ReleaseDeliveries(ctx context.Context, webhookID int64, by string) error {
	if _, err := d.write.ExecContext(ctx, `UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL
		WHERE webhook_id = ? AND claimed_by = ?`, webhookID, by); err != nil {
		return fmt.Errorf("release deliveries of webhook %d: %w", webhookID, err)
	}
	return nil
}

// NextDeliveryAt is when the earliest pending delivery of an enabled hook
// is due, or its claim runs out if that is later; false when none is
// pending.
func (d *DB) NextDeliveryAt(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	err := d.read.QueryRowContext(ctx, `SELECT min(max(d.next_at, coalesce(d.claimed_until, 0))) FROM webhook_deliveries d
		JOIN webhooks w ON w.id = d.webhook_id WHERE d.state = 'pending' AND w.enabled`).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next delivery: %w", err)
	}
	return nullMS(next), next.Valid, nil
}

// WebhookDeliveries is a hook's delivery log, newest first.
func (d *DB) WebhookDeliveries(ctx context.Context, webhookID int64, limit int) ([]Delivery, error) {
	if limit <= 0 || limit > MaxDeliveriesListed {
		limit = MaxDeliveriesListed
	}
	return d.deliveries(ctx, `SELECT `+DeliveryColumns+` FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?`, webhookID, limit)
}

func (d *DB) deliveries(ctx context.Context, q string, args ...any) ([]Delivery, error) {
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return scanDeliveries(rows)
}

// scanDeliveries reads rows of DeliveryColumns and closes them.
func scanDeliveries(rows *sql.Rows) ([]Delivery, error) {
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		dl, err := ScanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, dl)
	}
	return out, rows.Err()
}

// ScanDelivery reads a row of DeliveryColumns.
func ScanDelivery(row interface{ Scan(...any) error }) (Delivery, error) {
	var (
		dl                     Delivery
		typ, payload           string
		next, created, updated int64
		firstFailure           sql.NullInt64
	)
	if err := row.Scan(&dl.ID, &dl.WebhookID, &dl.EventID, &typ, &dl.AlertID, &payload, &dl.State, &dl.Attempts,
		&next, &firstFailure, &dl.LastStatus, &dl.LastError, &created, &updated); err != nil {
		return Delivery{}, err
	}
	dl.EventType, dl.Payload = alert.EventType(typ), []byte(payload)
	dl.NextAt, dl.FirstFailureAt, dl.CreatedAt, dl.UpdatedAt = fromMS(next), nullMS(firstFailure), fromMS(created), fromMS(updated)
	return dl, nil
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	DeliveryID int64
	By         string // the claimer that sent it (Claim.By)
	At         time.Time
	Status     int    // the receiver's HTTP status; 0 without an answer
	Err        string // "" when delivered
	// NextAt is when to try again (a failure within the retry policy);
	// zero gives up: the delivery is failed.
	NextAt time.Time
}

// RecordAttempt stores an attempt's outcome on the delivery and its hook,
// and ends the claim on it: a success ends the hook's failure streak, a
// failure starts one (if none). It returns the hook as it stands after. A
// delivery that a.By no longer claims (its claim ran out and another
// instance claimed it) is not changed: storage.ErrConflict.
func (d *DB) RecordAttempt(ctx context.Context, a Attempt) (Webhook, error) {
	var hookID int64
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var by sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT webhook_id, claimed_by FROM webhook_deliveries WHERE id = ?`, a.DeliveryID).Scan(&hookID, &by); err != nil {
			return translate(err)
		}
		if !by.Valid || by.String != a.By {
			return fmt.Errorf("%w: the delivery is not claimed by %q", storage.ErrConflict, a.By)
		}
		at := ms(a.At)
		state, next := DeliveryDelivered, at
		switch {
		case a.Err == "":
		case a.NextAt.IsZero():
			state = DeliveryFailed
		default:
			state, next = DeliveryPending, ms(a.NextAt)
		}
		_, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_at = ?,
			first_failure_at = CASE WHEN ? = '' THEN first_failure_at ELSE coalesce(first_failure_at, ?) END,
			last_status = ?, last_error = ?, updated_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?`,
			state, next, a.Err, at, a.Status, CutDetail(a.Err), at, a.DeliveryID)
		if err != nil {
			return err
		}
		if a.Err == "" {
			_, err = tx.ExecContext(ctx, `UPDATE webhooks SET failing_since = NULL WHERE id = ?`, hookID)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE webhooks SET failing_since = coalesce(failing_since, ?) WHERE id = ?`, at, hookID)
		}
		return err
	})
	if err != nil {
		return Webhook{}, fmt.Errorf("record delivery attempt %d: %w", a.DeliveryID, err)
	}
	return d.Webhook(ctx, hookID)
}

// PruneDeliveries deletes at most limit finished deliveries last changed
// before cutoff (the delivery log's retention).
func (d *DB) PruneDeliveries(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	res, err := d.write.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE id IN
		(SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < ? LIMIT ?)`, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// CutDetail bounds a hook's or delivery's reason as every store keeps it.
func CutDetail(s string) string { return cutAuditField(s, MaxAuditDetail) }
