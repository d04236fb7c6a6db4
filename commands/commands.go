// Package commands is how operators act on devices: cloud-to-device messages
// (a durable per-device queue whose deadlines a sweeper enforces), direct methods
// (request and response through a pluggable transport) and device twins. It owns
// the rules; db stores the state and transports (HTTPS handlers, MQTT) move bytes.
package commands

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"fieldhub/db"
)

// Publisher fans changes out to the dashboard's live streams; live.Hub
// implements it (the event contract is live/events.go). It must not block.
type Publisher interface {
	PublishCloudMessage(CloudMessageView)
	PublishMethodCall(MethodCallView)
	PublishTwin(TwinView)
}

type nopPublisher struct{}

func (nopPublisher) PublishCloudMessage(CloudMessageView) {}
func (nopPublisher) PublishMethodCall(MethodCallView)     {}
func (nopPublisher) PublishTwin(TwinView)                 {}

// Auditor records who did what; each service's store is one.
type Auditor interface {
	RecordAudit(ctx context.Context, e db.AuditEntry) error
}

// CloudStore keeps the cloud-to-device queue (*db.DB; every store passes
// the suite db/storetest.RunCloudQueue). It applies the queue's state
// machine in its transactions; CloudQueue adds the limits, the audit, the
// live events and the sweeper.
type CloudStore interface {
	Auditor
	EnqueueCloudMessage(ctx context.Context, nm db.NewCloudMessage, maxWaiting int) (db.CloudMessage, error)
	ReceiveCloudMessage(ctx context.Context, deviceID string, lockFor time.Duration) (db.CloudMessage, []db.CloudMessage, error)
	SettleCloudMessage(ctx context.Context, deviceID, lockToken, settlement string) (db.CloudMessage, error)
	ReleaseCloudMessage(ctx context.Context, deviceID, lockToken string) (db.CloudMessage, error)
	PurgeCloudMessages(ctx context.Context, deviceID string) ([]db.CloudMessage, error)
	CloudMessages(ctx context.Context, deviceID string, limit int) ([]db.CloudMessage, error)
	ApplyCloudMessageDeadlines(ctx context.Context) ([]db.CloudMessage, error)
	NextCloudMessageDeadline(ctx context.Context) (time.Time, error)
	PruneCloudMessages(ctx context.Context, cutoff time.Time) (int64, error)
}

// MethodStore is what direct method calls read and record (*db.DB).
type MethodStore interface {
	Auditor
	Device(ctx context.Context, deviceID string) (db.Device, error)
}

// TwinStore keeps device twins (*db.DB; db/storetest.RunTwins).
type TwinStore interface {
	Auditor
	Twin(ctx context.Context, deviceID string) (db.Twin, error)
	PatchTwin(ctx context.Context, deviceID, section string, patch map[string]any, ifVersion int64, maxBytes int) (db.Twin, error)
}

// audit records an action; a failure is logged, because the action already happened.
func audit(ctx context.Context, store Auditor, log *slog.Logger, e db.AuditEntry) {
	if err := store.RecordAudit(ctx, e); err != nil {
		log.Error("record audit", "action", e.Action, "target", e.Target, "err", err)
	}
}

// listeners is a set of callbacks. They run on the caller's goroutine, after the
// change is committed, so they must return quickly (hand off to a channel).
type listeners[F any] struct {
	mu   sync.Mutex
	next int
	fns  map[int]F
}

func (l *listeners[F]) add(fn F) (cancel func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fns == nil {
		l.fns = map[int]F{}
	}
	id := l.next
	l.next++
	l.fns[id] = fn
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.fns, id)
	}
}

func (l *listeners[F]) each(call func(F)) {
	l.mu.Lock()
	fns := make([]F, 0, len(l.fns))
	for _, fn := range l.fns {
		fns = append(fns, fn)
	}
	l.mu.Unlock()
	for _, fn := range fns {
		call(fn)
	}
}
