package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// lockSilence ("fhsi") is held by the one instance of a cluster that
// evaluates silence rules (package alerting).
const lockSilence = 0x66687369

// SessionLock is a PostgreSQL session advisory lock held on a connection
// of its own for as long as the instance lives: its holder does work once
// per cluster that needs state between runs (silence timers), unlike the
// transaction locks of deleteOnce. When the holder dies, its session ends
// (keepalives: within about 30 s of its machine vanishing) and another
// instance takes the lock at its next Hold.
type SessionLock struct {
	pool *pgxpool.Pool
	key  int64
	mu   sync.Mutex
	conn *pgxpool.Conn // nil while not held
}

// SilenceLock is the lock on silence evaluation (alerting.ClusterLock).
func (s *Store) SilenceLock() *SessionLock { return &SessionLock{pool: s.pool, key: lockSilence} }

// Hold takes the lock unless another session holds it, or checks that
// this one still holds it: true while it does.
func (l *SessionLock) Hold(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		_, err := l.conn.Exec(ctx, `SELECT 1`)
		if err == nil {
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		// The session ended, and the lock with it: take it again if free.
		l.drop()
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	var ok bool
	if _, err = conn.Exec(ctx, `SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3`); err == nil {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&ok)
	}
	if err != nil || !ok {
		conn.Release()
		return false, translate(err)
	}
	l.conn = conn
	return true, nil
}

// Release gives the lock up (before the store closes: the pool waits for
// the connection). It unlocks before closing: the server ends a closed
// session only once it has read the goodbye, so another instance asking
// right after a bare close could still find the lock held.
func (l *SessionLock) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
		cancel()
		l.drop()
	}
}

// drop closes the lock's connection: closing ends the session and the
// lock, where releasing it to the pool would keep both.
func (l *SessionLock) drop() {
	_ = l.conn.Hijack().Close(context.Background())
	l.conn = nil
}
