package commands

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"fieldhub/db"
)

// CloudQueueConfig configures a CloudQueue. Zero values take defaults.
type CloudQueueConfig struct {
	Store     CloudStore
	Publisher Publisher
	Logger    *slog.Logger
	// LockTimeout is how long a device holds a received message before it
	// returns to the queue (default 1 minute, Azure's).
	LockTimeout time.Duration
	// Retention is how long settled messages stay in the history (default 7 days).
	Retention time.Duration
	// MaxSweepInterval bounds the sweeper's sleep even when no deadline is near,
	// so it also prunes and recovers from missed wake-ups (default 30 s).
	MaxSweepInterval time.Duration
	// Now is the clock, the store's own (default time.Now).
	Now func() time.Time
}

// CloudQueue is the cloud-to-device message service: operators send, devices
// receive and settle (over HTTPS or MQTT), and a sweeper applies time-to-live and
// lock deadlines even when no device is polling. Every state lives in the
// database, so a restart resumes where it stopped.
type CloudQueue struct {
	store     CloudStore
	now       func() time.Time
	pub       Publisher
	log       *slog.Logger
	lock      time.Duration
	retention time.Duration
	maxSleep  time.Duration

	queued listeners[func(deviceID string)]

	wake      chan struct{}
	mu        sync.Mutex
	cancel    context.CancelFunc
	done      chan struct{}
	lastPrune time.Time
}

// NewCloudQueue builds the service. Call Start to run the sweeper; without it the
// deadlines are still honoured (every query checks them) but states change in the
// history only when a device next polls.
func NewCloudQueue(cfg CloudQueueConfig) *CloudQueue {
	if cfg.Publisher == nil {
		cfg.Publisher = nopPublisher{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultCloudLock
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.MaxSweepInterval <= 0 {
		cfg.MaxSweepInterval = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &CloudQueue{
		store: cfg.Store, now: cfg.Now, pub: cfg.Publisher, log: cfg.Logger, lock: cfg.LockTimeout,
		retention: cfg.Retention, maxSleep: cfg.MaxSweepInterval, wake: make(chan struct{}, 1),
	}
}

// Message is what an operator sends to a device.
type Message struct {
	Body          []byte
	Properties    map[string]string
	TTL           time.Duration // 0 = default (1 hour)
	MessageID     string        // generated when empty
	CorrelationID string
}

// Send queues m for a device and records who sent it. It refuses a message
// beyond the limits (limits.go) with a *storage.InvalidError, and with an error
// wrapping db.ErrQueueFull when the device already has MaxCloudQueue waiting.
func (q *CloudQueue) Send(ctx context.Context, actor, deviceID string, m Message) (db.CloudMessage, error) {
	nm := db.NewCloudMessage{
		DeviceID: deviceID, MessageID: m.MessageID, CorrelationID: m.CorrelationID, Body: m.Body,
		Properties: m.Properties, TTL: m.TTL, Sender: actor,
	}
	if err := checkCloudMessage(&nm); err != nil {
		return db.CloudMessage{}, err
	}
	msg, err := q.store.EnqueueCloudMessage(ctx, nm, MaxCloudQueue)
	if err != nil {
		if errors.Is(err, db.ErrQueueFull) {
			audit(ctx, q.store, q.log, db.AuditEntry{Actor: actor, Action: "c2d.send", Target: deviceID, Outcome: "refused", Detail: "queue full"})
		}
		return db.CloudMessage{}, err
	}
	audit(ctx, q.store, q.log, db.AuditEntry{Actor: actor, Action: "c2d.send", Target: deviceID,
		Detail: fmt.Sprintf("message %s, %d bytes, ttl %s", msg.MessageID, len(msg.Body), msg.TTL())})
	q.publish(msg)
	q.poke()
	q.notifyQueued(deviceID)
	return msg, nil
}

// Receive locks the device's next waiting message for the lock timeout and
// returns it, or db.ErrQueueEmpty.
func (q *CloudQueue) Receive(ctx context.Context, deviceID string) (db.CloudMessage, error) {
	msg, changed, err := q.store.ReceiveCloudMessage(ctx, deviceID, q.lock)
	for _, m := range changed {
		q.publish(m)
	}
	if err != nil {
		return db.CloudMessage{}, err
	}
	q.publish(msg)
	q.poke() // a new lock deadline
	return msg, nil
}

// Settle applies a device's settlement (db.SettleComplete, db.SettleReject or
// db.SettleAbandon) to the message it holds under lockToken. An unknown, settled
// or expired lock is db.ErrLockLost.
func (q *CloudQueue) Settle(ctx context.Context, deviceID, lockToken, settlement string) (db.CloudMessage, error) {
	msg, err := q.store.SettleCloudMessage(ctx, deviceID, lockToken, settlement)
	if err != nil {
		if errors.Is(err, db.ErrLockLost) {
			// The lock may have just expired; show that at once rather than at the next sweep.
			q.poke()
		}
		return db.CloudMessage{}, err
	}
	q.publish(msg)
	if !msg.Final() {
		q.notifyQueued(deviceID)
	}
	return msg, nil
}

// Complete settles a message as delivered (HTTPS DELETE, or an MQTT PUBACK).
func (q *CloudQueue) Complete(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error) {
	return q.Settle(ctx, deviceID, lockToken, db.SettleComplete)
}

// Abandon gives a message back to the queue (HTTPS abandon, or an MQTT
// connection lost before the PUBACK). The delivery still counts.
func (q *CloudQueue) Abandon(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error) {
	return q.Settle(ctx, deviceID, lockToken, db.SettleAbandon)
}

// Release gives back a message the transport took for a connection that
// ended before it was sent (MQTT): not a delivery, so the count stays.
func (q *CloudQueue) Release(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error) {
	msg, err := q.store.ReleaseCloudMessage(ctx, deviceID, lockToken)
	if err != nil {
		return db.CloudMessage{}, err
	}
	q.publish(msg)
	if !msg.Final() {
		q.notifyQueued(deviceID)
	}
	return msg, nil
}

// Purge ends every waiting or locked message of a device and returns how many.
func (q *CloudQueue) Purge(ctx context.Context, actor, deviceID string) (int, error) {
	purged, err := q.store.PurgeCloudMessages(ctx, deviceID)
	if err != nil {
		return 0, err
	}
	for _, m := range purged {
		q.publish(m)
	}
	audit(ctx, q.store, q.log, db.AuditEntry{Actor: actor, Action: "c2d.purge", Target: deviceID,
		Detail: fmt.Sprintf("%d messages purged", len(purged))})
	return len(purged), nil
}

// History is a device's messages, newest first.
func (q *CloudQueue) History(ctx context.Context, deviceID string, limit int) ([]db.CloudMessage, error) {
	return q.store.CloudMessages(ctx, deviceID, limit)
}

// OnQueued registers fn to be called with a device id whenever a message becomes
// deliverable to that device (sent, abandoned, or back after a lock expired).
// The MQTT transport uses it to push messages to connected devices. fn runs on
// the caller's goroutine and must not block. Call cancel to unregister.
func (q *CloudQueue) OnQueued(fn func(deviceID string)) (cancel func()) {
	return q.queued.add(fn)
}

func (q *CloudQueue) notifyQueued(deviceID string) {
	q.queued.each(func(fn func(string)) { fn(deviceID) })
}

func (q *CloudQueue) publish(m db.CloudMessage) {
	q.pub.PublishCloudMessage(NewCloudMessageView(m, liveBodyPreview))
}

// poke wakes the sweeper so it recomputes its next deadline.
func (q *CloudQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Changed announces messages the store changed by itself (deadlines, or
// an instance of the cluster found lost, whose messages in flight went
// back to the queue): each is published, and the devices with messages
// deliverable again are woken.
func (q *CloudQueue) Changed(changed []db.CloudMessage) {
	requeued := map[string]bool{}
	for _, m := range changed {
		q.publish(m)
		if !m.Final() {
			requeued[m.DeviceID] = true
		}
	}
	for dev := range requeued {
		q.notifyQueued(dev)
	}
}

// Sweep applies every passed deadline once, publishes the changes, tells
// listeners about messages that became deliverable again, and prunes old history.
func (q *CloudQueue) Sweep(ctx context.Context) error {
	changed, err := q.store.ApplyCloudMessageDeadlines(ctx)
	if err != nil {
		return err
	}
	q.Changed(changed)
	now := q.now()
	q.mu.Lock()
	prune := now.Sub(q.lastPrune) >= time.Hour
	if prune {
		q.lastPrune = now
	}
	q.mu.Unlock()
	if prune {
		n, err := q.store.PruneCloudMessages(ctx, now.Add(-q.retention))
		if err != nil {
			return err
		}
		if n > 0 {
			q.log.Info("pruned settled cloud-to-device messages", "count", n)
		}
	}
	return nil
}

// Start runs the sweeper until ctx ends or Close is called. It sleeps until the
// next deadline stored in the database, so expiry is on time without polling.
func (q *CloudQueue) Start(ctx context.Context) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cancel != nil {
		return
	}
	ctx, q.cancel = context.WithCancel(ctx)
	q.done = make(chan struct{})
	go q.sweepLoop(ctx, q.done)
}

// Close stops the sweeper and waits for it.
func (q *CloudQueue) Close() {
	q.mu.Lock()
	cancel, done := q.cancel, q.done
	q.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (q *CloudQueue) sweepLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	// Deadlines that passed while the hub was down are applied at once.
	if err := q.Sweep(ctx); err != nil && ctx.Err() == nil {
		q.log.Error("cloud message sweep", "err", err)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := q.maxSleep
		next, err := q.store.NextCloudMessageDeadline(ctx)
		if err != nil && ctx.Err() == nil {
			q.log.Error("cloud message sweep", "err", err)
		}
		if !next.IsZero() {
			// A few milliseconds late so the deadline has surely passed by the db clock.
			if d := next.Sub(q.now()) + 5*time.Millisecond; d < wait {
				wait = max(d, 0)
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
			// Since Go 1.23 a stopped timer's channel holds no stale value to drain.
			timer.Stop()
			continue
		case <-timer.C:
		}
		if err := q.Sweep(ctx); err != nil && ctx.Err() == nil {
			q.log.Error("cloud message sweep", "err", err)
		}
	}
}

// liveBodyPreview bounds the body carried in live events; the API has it whole.
const liveBodyPreview = 256

// CloudMessageView is a message as the API and live streams show it.
type CloudMessageView struct {
	ID               int64             `json:"id"`
	DeviceID         string            `json:"deviceId"`
	MessageID        string            `json:"messageId"`
	CorrelationID    string            `json:"correlationId,omitempty"`
	State            string            `json:"state"`
	Body             string            `json:"body"`
	BodyEncoding     string            `json:"bodyEncoding,omitempty"` // "base64" when the body is not UTF-8
	BodyTruncated    bool              `json:"bodyTruncated,omitempty"`
	Properties       map[string]string `json:"properties"`
	DeliveryCount    int               `json:"deliveryCount"`
	MaxDeliveryCount int               `json:"maxDeliveryCount"`
	Sender           string            `json:"sender"`
	EnqueuedAt       time.Time         `json:"enqueuedAt"`
	ExpiresAt        time.Time         `json:"expiresAt"`
	UpdatedAt        time.Time         `json:"updatedAt"`
	LockExpiresAt    *time.Time        `json:"lockExpiresAt,omitempty"`
	SettledAt        *time.Time        `json:"settledAt,omitempty"`
}

// NewCloudMessageView shows m, with at most maxBody bytes of body (0 = all).
func NewCloudMessageView(m db.CloudMessage, maxBody int) CloudMessageView {
	v := CloudMessageView{
		ID: m.ID, DeviceID: m.DeviceID, MessageID: m.MessageID, CorrelationID: m.CorrelationID, State: m.State,
		Properties: m.Properties, DeliveryCount: m.DeliveryCount, MaxDeliveryCount: m.MaxDeliveryCount,
		Sender: m.Sender, EnqueuedAt: m.EnqueuedAt, ExpiresAt: m.ExpiresAt, UpdatedAt: m.UpdatedAt,
	}
	if !m.LockExpiresAt.IsZero() {
		t := m.LockExpiresAt
		v.LockExpiresAt = &t
	}
	if !m.SettledAt.IsZero() {
		t := m.SettledAt
		v.SettledAt = &t
	}
	body := m.Body
	if maxBody > 0 && len(body) > maxBody {
		body, v.BodyTruncated = body[:maxBody], true
		// Do not cut a UTF-8 sequence in half (a rune has at most 4 bytes).
		for i := 0; i < 3 && len(body) > 0 && !utf8.Valid(body); i++ {
			body = body[:len(body)-1]
		}
	}
	if utf8.Valid(body) {
		v.Body = string(body)
	} else {
		v.Body, v.BodyEncoding = base64.StdEncoding.EncodeToString(body), "base64"
	}
	return v
}

// Validate checks m against the limits (limits.go) as Send would, for a
// message that is to go to many devices (package jobs): errors are
// *storage.InvalidError naming the field.
func (m Message) Validate() error {
	nm := db.NewCloudMessage{MessageID: m.MessageID, CorrelationID: m.CorrelationID, Body: m.Body, Properties: m.Properties, TTL: m.TTL}
	return checkCloudMessage(&nm)
}
