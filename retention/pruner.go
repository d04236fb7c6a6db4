// Package retention deletes records that have outlived their keep time and
// that no other service owns: audit log entries older than the audit
// retention, and expired sessions. (Ingest prunes telemetry; the cloud
// queue prunes settled cloud-to-device messages.)
package retention

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Store is what the pruner deletes from (*db.DB).
type Store interface {
	PruneAudit(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	DeleteExpiredSessions(ctx context.Context) (int64, error)
}

// DefaultAuditRetention is how long audit entries are kept unless told.
const DefaultAuditRetention = 90 * 24 * time.Hour

// batch bounds one delete, so that a long backlog (a first start after an
// upgrade) is removed in short transactions that let ingest in between.
const batch = 2000

// Config configures a Pruner; zero values take defaults.
type Config struct {
	Store Store
	// AuditRetention is how long audit entries are kept (default 90 days).
	AuditRetention time.Duration
	// Every is the time between passes (default 1 hour).
	Every  time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// Pruner runs a pass at Start and then periodically until Close.
type Pruner struct {
	cfg    Config
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a pruner; Start runs it.
func New(cfg Config) *Pruner {
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = DefaultAuditRetention
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Pruner{cfg: cfg}
}

// Result is what one pass deleted.
type Result struct {
	AuditEntries int64
	Sessions     int64
}

// Prune runs one pass: audit entries older than the retention, then
// expired sessions.
func (p *Pruner) Prune(ctx context.Context) (Result, error) {
	var r Result
	cutoff := p.cfg.Now().Add(-p.cfg.AuditRetention)
	for {
		n, err := p.cfg.Store.PruneAudit(ctx, cutoff, batch)
		r.AuditEntries += n
		if err != nil {
			return r, err
		}
		if n < batch {
			break
		}
	}
	n, err := p.cfg.Store.DeleteExpiredSessions(ctx)
	r.Sessions = n
	return r, err
}

// Start runs a pass now and then every Config.Every, until Close or ctx ends.
func (p *Pruner) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go p.run(ctx, p.done)
}

// Close stops the pruner and waits for a pass in progress to end.
func (p *Pruner) Close() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (p *Pruner) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	for {
		r, err := p.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			p.cfg.Logger.Error("prune audit log and sessions", "err", err)
		case r.AuditEntries > 0 || r.Sessions > 0:
			p.cfg.Logger.Info("pruned", "audit_entries", r.AuditEntries, "expired_sessions", r.Sessions,
				"audit_retention", p.cfg.AuditRetention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
