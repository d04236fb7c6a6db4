package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"fieldhub/alert"
	"fieldhub/db"
)

// WebhookStore keeps subscriptions and the durable outbox of their
// deliveries; *db.DB implements it.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, n db.NewWebhook) (db.Webhook, error)
	Webhooks(ctx context.Context) ([]db.Webhook, error)
	Webhook(ctx context.Context, id int64) (db.Webhook, error)
	SetWebhookEnabled(ctx context.Context, id int64, enabled bool, reason string) (db.Webhook, error)
	DeleteWebhook(ctx context.Context, id int64) error
	QueueDelivery(ctx context.Context, d db.Delivery) (db.Delivery, error)
	ClaimDeliveries(ctx context.Context, webhookID int64, c db.Claim, limit int) ([]db.Delivery, error)
	ReleaseDeliveries(ctx context.Context, webhookID int64, by string) error
	NextDeliveryAt(ctx context.Context) (time.Time, bool, error)
	WebhookDeliveries(ctx context.Context, webhookID int64, limit int) ([]db.Delivery, error)
	RecordAttempt(ctx context.Context, a db.Attempt) (db.Webhook, error)
	PruneDeliveries(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// DeliveryOptions tune webhook delivery.
type DeliveryOptions struct {
	// Policy spaces retries and says when a failing hook is disabled
	// (default alert.DefaultRetryPolicy: an hour of retries, disabled
	// after a day of failures).
	Policy alert.RetryPolicy
	// Timeout bounds one attempt, connection to the last byte read
	// (default 10 s): a receiver that hangs holds only its own hook's
	// deliveries, never another hook's, nor evaluation or ingest.
	Timeout time.Duration
	// AllowLoopback lets hooks reach loopback addresses (a receiver on
	// the hub's machine). Link-local addresses (cloud metadata services),
	// unspecified and multicast ones are never dialled.
	AllowLoopback bool
	// Claimer names this instance in the claims on deliveries (its --node):
	// instances sharing a store send each delivery once (db.Claim).
	Claimer string
	// ClaimFor is how long a claim holds (default 3 × Timeout + 10 s, 40 s;
	// at least 2 × Timeout + 10 s): an instance that dies while sending
	// leaves its claimed deliveries to the others that long. A sender
	// attempts a delivery only while its claim outlasts the attempt and
	// its record (Timeout + 10 s), and claims again for the rest.
	ClaimFor time.Duration
}

// Bounds of delivery.
const (
	maxResponseRead = 64 << 10 // bytes of a receiver's answer read (and dropped)
	dueBatch        = 20       // deliveries of one hook taken per round
)

// deliverer sends the outbox: one goroutine per hook with due deliveries
// (at most db.MaxWebhooks), each sending its hook's deliveries in order.
type deliverer struct {
	store  WebhookStore
	audit  Auditor
	opt    DeliveryOptions
	now    func() time.Time
	log    *slog.Logger
	client *http.Client

	wake chan struct{}
	mu   sync.Mutex
	busy map[int64]bool
	wg   sync.WaitGroup

	// outcomes counts attempts by outcome for the metrics.
	delivered, failed, givenUp, dropped atomic.Int64
}

func newDeliverer(store WebhookStore, audit Auditor, opt DeliveryOptions, now func() time.Time, log *slog.Logger) *deliverer {
	if opt.Policy.GiveUpAfter == 0 {
		opt.Policy = alert.DefaultRetryPolicy()
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.ClaimFor < 2*opt.Timeout+storeTimeout {
		opt.ClaimFor = 3*opt.Timeout + storeTimeout
	}
	dialer := &net.Dialer{Timeout: opt.Timeout, Control: dialGuard(opt.AllowLoopback)}
	transport := &http.Transport{
		// No proxy from the environment: the guard checks the address dialled.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   opt.Timeout,
		ResponseHeaderTimeout: opt.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &deliverer{
		store: store, audit: audit, opt: opt, now: now, log: log,
		client: &http.Client{
			Transport: transport, Timeout: opt.Timeout,
			// A redirect is an answer, not a delivery: following it would let
			// a receiver point the hub anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake: make(chan struct{}, 1),
		busy: map[int64]bool{},
	}
}

// ErrForbiddenAddress is a webhook address the hub refuses to dial.
var ErrForbiddenAddress = errors.New("webhook address is not allowed")

// dialGuard refuses addresses a webhook must not reach, checked on the
// address actually dialled (after DNS), so a name that resolves to one
// later cannot get around it.
func dialGuard(allowLoopback bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, host)
		}
		ip = ip.Unmap()
		switch {
		case ip.IsUnspecified(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
			return fmt.Errorf("%w: %s is link-local, multicast or unspecified", ErrForbiddenAddress, ip)
		case ip.IsLoopback() && !allowLoopback:
			return fmt.Errorf("%w: %s is loopback (serve --webhook-allow-loopback allows it)", ErrForbiddenAddress, ip)
		}
		return nil
	}
}

func (d *deliverer) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// queue puts an event into the outbox of every enabled hook that
// subscribes to it.
func (d *deliverer) queue(ctx context.Context, ev alert.Event) {
	hooks, err := d.store.Webhooks(ctx)
	if err != nil {
		d.log.Error("read webhooks", "err", err)
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		d.log.Error("encode webhook event", "err", err)
		return
	}
	queued := false
	for _, h := range hooks {
		if !h.Enabled || !h.Wants(ev.Type) {
			continue
		}
		dl, err := d.store.QueueDelivery(ctx, db.Delivery{WebhookID: h.ID, EventID: ev.ID, EventType: ev.Type, AlertID: ev.Alert.ID, Payload: payload})
		if err != nil {
			d.log.Error("queue webhook delivery", "webhook", h.ID, "err", err)
			continue
		}
		if dl.State == db.DeliveryDropped {
			d.dropped.Add(1)
			d.log.Warn("webhook outbox is full; delivery dropped", "webhook", h.ID, "event", ev.ID)
		}
		queued = true
	}
	if queued {
		d.signal()
	}
}

// run starts a sender for each hook with due deliveries, then sleeps until
// the next is due or something is queued.
func (d *deliverer) run(ctx context.Context) {
	defer d.wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.round(ctx)
		wait := time.Minute // also picks up hooks enabled again
		if next, ok, err := d.store.NextDeliveryAt(ctx); err == nil && ok {
			wait = min(wait, max(next.Sub(d.now()), 0))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

func (d *deliverer) round(ctx context.Context) {
	hooks, err := d.store.Webhooks(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("read webhooks", "err", err)
		}
		return
	}
	for _, h := range hooks {
		d.mu.Lock()
		busy := d.busy[h.ID]
		d.mu.Unlock()
		if !h.Enabled || busy {
			continue
		}
		now := d.now()
		claim := db.Claim{By: d.opt.Claimer, Now: now, Until: now.Add(d.opt.ClaimFor)}
		due, err := d.store.ClaimDeliveries(ctx, h.ID, claim, dueBatch)
		if err != nil || len(due) == 0 {
			if err != nil && ctx.Err() == nil {
				d.log.Error("claim webhook deliveries", "webhook", h.ID, "err", err)
			}
			continue
		}
		d.mu.Lock()
		d.busy[h.ID] = true
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.send(ctx, h, due, claim.Until)
			// What was not sent (a failure stopped the hook, shutdown, the
			// claim running short) is left to whichever instance comes next.
			rctx, cancel := storeCtx(ctx)
			if err := d.store.ReleaseDeliveries(rctx, h.ID, d.opt.Claimer); err != nil {
				d.log.Error("release webhook deliveries", "webhook", h.ID, "err", err)
			}
			cancel()
			d.mu.Lock()
			delete(d.busy, h.ID)
			d.mu.Unlock()
			d.signal()
		}()
	}
}

// send delivers a hook's claimed deliveries in order; it stops at the
// first failure (the rest wait for the hook to answer again) and disables a
// hook that has failed for the policy's DisableAfter. It attempts a
// delivery only while its claim (until) outlasts the attempt and its
// record, so that no other instance can have claimed it meanwhile.
func (d *deliverer) send(ctx context.Context, h db.Webhook, due []db.Delivery, until time.Time) {
	for _, dl := range due {
		if d.now().Add(d.opt.Timeout + storeTimeout).After(until) {
			return // claimed again in the next round
		}
		status, err := d.attempt(ctx, h, dl)
		if ctx.Err() != nil {
			return // shutting down: the delivery stays pending and goes after the restart
		}
		now := d.now()
		a := db.Attempt{DeliveryID: dl.ID, By: d.opt.Claimer, At: now, Status: status}
		if err != nil {
			a.Err = err.Error()
			first := dl.FirstFailureAt
			if first.IsZero() {
				first = now
			}
			if next, giveUp := d.opt.Policy.NextAttempt(dl.Attempts+1, first, now); !giveUp {
				a.NextAt = next
				d.failed.Add(1)
			} else {
				d.givenUp.Add(1)
			}
		} else {
			d.delivered.Add(1)
		}
		wctx, cancel := storeCtx(ctx)
		hook, rerr := d.store.RecordAttempt(wctx, a)
		if rerr != nil {
			cancel()
			d.log.Error("record webhook attempt", "webhook", h.ID, "delivery", dl.ID, "err", rerr)
			return
		}
		if err != nil && d.opt.Policy.Disable(hook.FailingSince, now) {
			reason := "failing since " + hook.FailingSince.UTC().Format(time.RFC3339) + ": " + a.Err
			if _, derr := d.store.SetWebhookEnabled(wctx, h.ID, false, reason); derr != nil {
				d.log.Error("disable failing webhook", "webhook", h.ID, "err", derr)
			} else {
				d.log.Warn("webhook disabled after failing for a day", "webhook", h.ID, "url", h.URL, "reason", reason)
				_ = d.audit.RecordAudit(wctx, db.AuditEntry{Actor: "hub", Action: ActionHookDisable, Target: "webhook " + strconv.FormatInt(h.ID, 10), Outcome: "ok", Detail: reason})
			}
		}
		cancel()
		if err != nil {
			return
		}
	}
}

// attempt POSTs one delivery, signed, and reports the receiver's status.
func (d *deliverer) attempt(ctx context.Context, h db.Webhook, dl db.Delivery) (int, error) {
	var ev alert.Event
	if err := json.Unmarshal(dl.Payload, &ev); err != nil {
		return 0, fmt.Errorf("stored event is unreadable: %w", err)
	}
	ev.SentAt = d.now().UTC().Truncate(time.Second)
	body, err := ev.Payload()
	if h.Format == db.WebhookSlack {
		body, err = ev.Slack()
	}
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Fieldhub-Webhook/1")
	req.Header.Set(alert.SignatureHeader, alert.Sign([]byte(h.Secret), body))
	req.Header.Set(alert.TimestampHeader, alert.FormatTimestamp(ev.SentAt))
	req.Header.Set("X-Fieldhub-Event", string(ev.Type))
	req.Header.Set("X-Fieldhub-Delivery", ev.ID)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, errors.Unwrap(err) // without "Post <url>:": the log names the hook
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func (d *deliverer) prune(ctx context.Context, cutoff time.Time) {
	for {
		n, err := d.store.PruneDeliveries(ctx, cutoff, 1000)
		if err != nil || n < 1000 {
			if err != nil && ctx.Err() == nil {
				d.log.Error("prune webhook deliveries", "err", err)
			}
			return
		}
	}
}

// The webhook API (admins).

// ErrNoWebhooks is returned when the service runs without a webhook store.
var ErrNoWebhooks = errors.New("webhooks are not available")

// CreateWebhook subscribes a URL to events.
func (s *Service) CreateWebhook(ctx context.Context, actor string, n db.NewWebhook) (db.Webhook, error) {
	if s.hooks == nil {
		return db.Webhook{}, ErrNoWebhooks
	}
	w, err := s.cfg.Webhooks.CreateWebhook(ctx, n)
	if err != nil {
		return db.Webhook{}, err
	}
	s.audit(ctx, actor, ActionHookCreate, "webhook "+strconv.FormatInt(w.ID, 10), w.URL)
	return w, nil
}

// Webhooks lists the subscriptions.
func (s *Service) Webhooks(ctx context.Context) ([]db.Webhook, error) {
	if s.hooks == nil {
		return []db.Webhook{}, nil
	}
	return s.cfg.Webhooks.Webhooks(ctx)
}

// Webhook reads one subscription with its latest deliveries.
func (s *Service) Webhook(ctx context.Context, id int64, deliveries int) (db.Webhook, []db.Delivery, error) {
	if s.hooks == nil {
		return db.Webhook{}, nil, ErrNoWebhooks
	}
	w, err := s.cfg.Webhooks.Webhook(ctx, id)
	if err != nil {
		return db.Webhook{}, nil, err
	}
	log, err := s.cfg.Webhooks.WebhookDeliveries(ctx, id, deliveries)
	return w, log, err
}

// SetWebhookEnabled enables or disables a hook on an admin's word.
func (s *Service) SetWebhookEnabled(ctx context.Context, actor string, id int64, enabled bool) (db.Webhook, error) {
	if s.hooks == nil {
		return db.Webhook{}, ErrNoWebhooks
	}
	w, err := s.cfg.Webhooks.SetWebhookEnabled(ctx, id, enabled, "")
	if err != nil {
		return db.Webhook{}, err
	}
	s.audit(ctx, actor, ActionHookUpdate, "webhook "+strconv.FormatInt(id, 10), map[bool]string{true: "enabled", false: "disabled"}[enabled])
	s.hooks.signal()
	return w, nil
}

// DeleteWebhook removes a hook and its outbox.
func (s *Service) DeleteWebhook(ctx context.Context, actor string, id int64) error {
	if s.hooks == nil {
		return ErrNoWebhooks
	}
	if err := s.cfg.Webhooks.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, actor, ActionHookDelete, "webhook "+strconv.FormatInt(id, 10), "")
	return nil
}

// DeliveryCounts counts webhook delivery attempts since start by outcome:
// delivered, failed (retried later), given_up, dropped (outbox full).
func (s *Service) DeliveryCounts() map[string]int64 {
	if s.hooks == nil {
		return map[string]int64{}
	}
	h := s.hooks
	return map[string]int64{"delivered": h.delivered.Load(), "failed": h.failed.Load(), "given_up": h.givenUp.Load(), "dropped": h.dropped.Load()}
}
