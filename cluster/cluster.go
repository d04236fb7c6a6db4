// Package cluster is an instance's membership of a cluster of hubs that
// share one PostgreSQL database: the lease the instance holds there and
// renews, and what happens when another instance stops renewing its own
// (killed, its machine gone, cut off from the database): its devices'
// connections are taken back (offline on every instance, their in-flight
// cloud-to-device messages back in the queue) and its telemetry log is
// folded into the time series, by exactly one live instance.
//
// No election: the lease is a row, taken back by the transaction that
// finds it expired and marks it lost (the row lock makes that one
// transaction); telemetry is folded under the lost node's own claim, a
// PostgreSQL advisory lock its process held while it lived.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"fieldhub/db"
)

// ErrLeaseLost is RenewLease's answer when another instance found this
// one's lease expired and took its connections back.
var ErrLeaseLost = errors.New("this instance's lease ran out and another instance took its devices' connections back")

// Store is what membership needs of the database (the PostgreSQL store).
// The store knows its own node; times are the database's, so that the
// instances' clocks need not agree.
type Store interface {
	// JoinCluster takes (or renews) this instance's lease for lease.
	JoinCluster(ctx context.Context, lease time.Duration) error
	// RenewLease extends the lease; ErrLeaseLost when it was taken back.
	RenewLease(ctx context.Context, lease time.Duration) error
	// LeaveCluster gives the lease up at a clean shutdown, once this
	// instance's connections are closed and its telemetry checkpointed.
	LeaveCluster(ctx context.Context) error
	// LostNodes lists the other instances whose lease expired, and those
	// taken back whose telemetry is not folded yet.
	LostNodes(ctx context.Context) ([]string, error)
	// ReclaimNode takes back the connections of node (own: this instance's
	// previous run, whatever its lease; else only when its lease expired
	// and nobody took it back yet, ok false otherwise): its devices marked
	// disconnected, its locked cloud-to-device messages abandoned.
	ReclaimNode(ctx context.Context, node string, own bool) (r Reclaimed, ok bool, err error)
	// ForgetNode drops a lost instance's lease once its telemetry is folded.
	ForgetNode(ctx context.Context, node string) error
	// UnleasedTelemetryNodes lists the telemetry nodes other than this one
	// that no instance holds a lease for: stopped instances, whose log
	// may hold messages their last checkpoint did not fold.
	UnleasedTelemetryNodes(ctx context.Context) ([]string, error)
}

// Reclaimed is what taking back an instance's connections changed.
type Reclaimed struct {
	Node          string
	Devices       []string          // marked disconnected
	CloudMessages []db.CloudMessage // given back to the queue (or dead or expired)
}

// Config configures a Member; zero durations take the defaults.
type Config struct {
	Store Store
	Node  string
	// Lease is how long a lease lasts unrenewed (default 15 s); it is
	// renewed every third of it, and other instances look for expired
	// leases as often: a dead instance's devices are offline within
	// about 4/3 of Lease.
	Lease time.Duration
	// Reclaimed announces what a reclaim changed: devices offline on every
	// instance, messages published and pushed again.
	Reclaimed func(Reclaimed)
	// Fold folds a stopped node's telemetry log into the time series;
	// done is false when the node's claim is held (it still runs).
	Fold func(ctx context.Context, node string) (done bool, err error)
	// LeaseLost is called when this instance finds its lease taken back:
	// the database says its devices are offline, so it closes their
	// connections, and they reconnect and are recorded again.
	LeaseLost func()
	Logger    *slog.Logger
}

// Member holds an instance's lease and takes back lost instances' work.
type Member struct {
	cfg    Config
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Join takes back this instance's previous run (connections it held when
// it stopped), takes its lease and starts renewing it and watching the
// others'. Call it before the instance accepts device connections: the
// reclaim marks this node's connections closed.
func Join(ctx context.Context, cfg Config) (*Member, error) {
	if cfg.Lease <= 0 {
		cfg.Lease = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Member{cfg: cfg}
	r, _, err := cfg.Store.ReclaimNode(ctx, cfg.Node, true)
	if err != nil {
		return nil, fmt.Errorf("take back this instance's previous connections: %w", err)
	}
	m.announce(r)
	if err := cfg.Store.JoinCluster(ctx, cfg.Lease); err != nil {
		return nil, fmt.Errorf("join the cluster: %w", err)
	}
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.wg.Add(2)
	go m.renew(ctx)
	go m.watch(ctx)
	return m, nil
}

// Leave stops renewing and watching and gives the lease up.
func (m *Member) Leave(ctx context.Context) error {
	m.cancel()
	m.wg.Wait()
	return m.cfg.Store.LeaveCluster(ctx)
}

// every is how often the lease is renewed and others' are looked at.
func (m *Member) every() time.Duration { return m.cfg.Lease / 3 }

// renew extends the lease on its own goroutine, so that a long fold never
// lets it run out.
func (m *Member) renew(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.every())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := m.cfg.Store.RenewLease(ctx, m.cfg.Lease)
		switch {
		case errors.Is(err, ErrLeaseLost):
			m.cfg.Logger.Error("this instance was taken for lost (its lease ran out: cut off from the database, or stalled); closing its device connections, which reconnect")
			if m.cfg.LeaseLost != nil {
				m.cfg.LeaseLost()
			}
			if err := m.cfg.Store.JoinCluster(ctx, m.cfg.Lease); err != nil && ctx.Err() == nil {
				m.cfg.Logger.Error("join the cluster again", "err", err)
			}
		case err != nil && ctx.Err() == nil:
			m.cfg.Logger.Warn("renew this instance's lease", "err", err)
		}
	}
}

// watch looks for lost instances: at once (stopped instances' telemetry
// first), then every third of the lease.
func (m *Member) watch(ctx context.Context) {
	defer m.wg.Done()
	m.foldStopped(ctx)
	t := time.NewTicker(m.every())
	defer t.Stop()
	for {
		m.reclaimLost(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// foldStopped folds the logs of telemetry nodes no instance holds a lease
// for (an instance stopped while its last checkpoint failed, or the single
// hub's node "" of a database that grew into a cluster).
func (m *Member) foldStopped(ctx context.Context) {
	nodes, err := m.cfg.Store.UnleasedTelemetryNodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.cfg.Logger.Warn("list stopped instances' telemetry", "err", err)
		}
		return
	}
	for _, node := range nodes {
		m.fold(ctx, node)
	}
}

// reclaimLost takes back every lost instance's connections and folds its
// telemetry; a lost instance stays listed until its telemetry is folded.
func (m *Member) reclaimLost(ctx context.Context) {
	nodes, err := m.cfg.Store.LostNodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.cfg.Logger.Warn("look for lost instances", "err", err)
		}
		return
	}
	for _, node := range nodes {
		r, ok, err := m.cfg.Store.ReclaimNode(ctx, node, false)
		if err != nil {
			if ctx.Err() == nil {
				m.cfg.Logger.Error("take back a lost instance's connections", "node", node, "err", err)
			}
			continue
		}
		if ok {
			m.cfg.Logger.Warn("instance lost: its lease ran out; its devices are offline until they reconnect",
				"node", node, "devices", len(r.Devices), "cloud_messages_requeued", len(r.CloudMessages))
			m.announce(r)
		}
		if m.fold(ctx, node) {
			if err := m.cfg.Store.ForgetNode(ctx, node); err != nil && ctx.Err() == nil {
				m.cfg.Logger.Warn("forget a lost instance", "node", node, "err", err)
			}
		}
	}
}

// fold folds node's telemetry; it says whether that is done.
func (m *Member) fold(ctx context.Context, node string) bool {
	if m.cfg.Fold == nil {
		return true
	}
	done, err := m.cfg.Fold(ctx, node)
	if err != nil {
		if ctx.Err() == nil {
			m.cfg.Logger.Error("fold a stopped instance's telemetry log", "node", node, "err", err)
		}
		return false
	}
	return done
}

func (m *Member) announce(r Reclaimed) {
	if m.cfg.Reclaimed != nil && (len(r.Devices) > 0 || len(r.CloudMessages) > 0) {
		m.cfg.Reclaimed(r)
	}
}
