// Package bus carries what the instances of a Fieldhub cluster tell each
// other, over NATS: every live event (live.PeerEvent), so that a browser
// on any instance sees the devices of all of them; and what is meant for a
// device to the instance that holds its MQTT connection, found in the
// store (DeviceConnectionNode): direct methods, whose answer comes back
// to the caller, cloud-to-device and desired-property pushes, and the
// takeover of a session a device left open on another instance.
//
// Without NATS URLs the bus is the one process: nothing leaves it, and
// every command goes to the local broker as it would without a bus.
//
// Subjects (subjects.go) are fieldhub.live for live events and
// fieldhub.node.<node>.<what> for one instance. Everything is bounded:
// what an instance publishes waits in a queue of RelayQueue events; a
// subscription holds at most MaxPending messages and MaxPendingBytes
// before NATS drops (a slow consumer); nothing above MaxMessage bytes is
// sent or taken.
//
// What is lost while NATS is down: live events (best-effort; browsers are
// told to reload when the bus is back), and pushes to devices on other
// instances beyond the client's reconnect buffer (the messages stay
// queued in the store and go out on the device's next wake). Direct
// methods to devices on other instances fail at once with
// commands.ErrInstanceUnreachable.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"fieldhub/live"
)

// Store is the connection registry the bus reads (*db.DB; every store
// passes db/storetest.RunMQTTSessions): which instance holds a device's
// connection. The broker writes it (mqtt.Store.SetDeviceConnection).
type Store interface {
	// DeviceConnectionNode is the node holding the device's live
	// connection, "" for none; an unknown device is storage.ErrNotFound.
	DeviceConnectionNode(ctx context.Context, deviceID string) (string, error)
}

// Devices are this instance's device connections; *mqtt.Broker implements it.
type Devices interface {
	Connected(deviceID string) bool
	InvokeMethod(ctx context.Context, deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error)
	WakeCloudMessages(deviceID string) bool
	PushDesired(deviceID string, patch json.RawMessage, version int64) bool
	DisconnectDevice(deviceID, reason string) bool
}

// Peers applies live events from other instances; live.Hub implements it.
type Peers interface {
	FromPeer(node string, ev live.PeerEvent) error
	Resync()
}

// Config is what a Bus needs. Node and Store are required.
type Config struct {
	// URLs are the NATS servers (nats://host:4222); none: one instance.
	URLs []string
	// Node names this instance (CheckNode); two instances must not share it.
	Node   string
	Store  Store
	Logger *slog.Logger
	// MaxMessage bounds what one NATS message carries (default 1 MiB, or
	// the server's max_payload if smaller).
	MaxMessage int
	// MaxPending and MaxPendingBytes bound what waits in one subscription
	// (defaults 8192 messages, 32 MiB); beyond them NATS drops.
	MaxPending      int
	MaxPendingBytes int
	// RelayQueue bounds the live events waiting to be sent (default 4096);
	// beyond it they are dropped.
	RelayQueue int
	// MaxCalls bounds the direct methods this instance runs for others at
	// once (default 1024); beyond it a call is refused.
	MaxCalls int
	// ReconnectBuffer is what the client keeps of its publishes while
	// NATS is unreachable (default 4 MiB).
	ReconnectBuffer int
	// ConnectTimeout bounds the first connection (default 10 s).
	ConnectTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultMaxMessage      = 1 << 20
	defaultMaxPending      = 8192
	defaultMaxPendingBytes = 32 << 20
	defaultRelayQueue      = 4096
	defaultMaxCalls        = 1024
	defaultReconnectBuffer = 4 << 20
)

// Bus is this instance's link to the others. Build it with Open, plug in
// the live hub (AttachHub) and the broker (AttachDevices) once they run,
// and Close it after them.
type Bus struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn // nil for one instance
	max  int        // bytes of one message
	node string

	mu      sync.RWMutex
	devices Devices
	peers   Peers
	subs    []*nats.Subscription
	watched map[string]*nats.Subscription // device id → its message events
	dropped int64                         // by device subscriptions gone since

	relayq chan live.PeerEvent
	routes chan route
	calls  chan struct{} // semaphore of methods run for others
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{} // closed when the NATS connection is

	stats struct {
		relayed, relayDropped, refused, routeDropped, peerErrors, bytesSent atomic.Int64
	}
	closeOnce sync.Once
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckNode refuses a node name that cannot be a NATS subject token.
func CheckNode(node string) error {
	if !nodeName.MatchString(node) {
		return fmt.Errorf("node name %q: use 1 to 64 letters, digits, '-' and '_'", node)
	}
	return nil
}

// DefaultNode is the node name of an instance on host serving on port:
// the host name and the port, with what a name may not hold made '-'.
func DefaultNode(host, port string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return r
			}
			return '-'
		}, s)
	}
	name := clean(host)
	if len(name) > 48 {
		name = name[:48]
	}
	if name == "" {
		name = "fieldhub"
	}
	return name + "-" + clean(port)
}

// Open connects to NATS (when URLs are given) and starts the bus's
// workers. It fails when no server can be reached within ConnectTimeout;
// after that the client reconnects on its own, forever.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	if err := CheckNode(cfg.Node); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("bus: no store to find devices' instances in")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = defaultMaxPending
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = defaultMaxPendingBytes
	}
	if cfg.RelayQueue <= 0 {
		cfg.RelayQueue = defaultRelayQueue
	}
	if cfg.MaxCalls <= 0 {
		cfg.MaxCalls = defaultMaxCalls
	}
	if cfg.ReconnectBuffer <= 0 {
		cfg.ReconnectBuffer = defaultReconnectBuffer
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	b := &Bus{
		cfg: cfg, log: cfg.Logger.With("component", "bus", "node", cfg.Node), node: cfg.Node, max: cfg.MaxMessage,
		relayq:  make(chan live.PeerEvent, cfg.RelayQueue),
		routes:  make(chan route, cfg.RelayQueue),
		calls:   make(chan struct{}, cfg.MaxCalls),
		closed:  make(chan struct{}),
		watched: map[string]*nats.Subscription{},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if len(cfg.URLs) == 0 {
		return b, nil
	}
	if err := b.connect(ctx); err != nil {
		b.cancel()
		return nil, err
	}
	b.wg.Add(2)
	go b.runRelay()
	go b.runRoutes()
	return b, nil
}

// connect dials NATS within ConnectTimeout.
func (b *Bus) connect(ctx context.Context) error {
	urls := strings.Join(b.cfg.URLs, ",")
	opts := []nats.Option{
		nats.Name("fieldhub " + b.node),
		// An instance never hears its own live events back: its hub has
		// published them already.
		nats.NoEcho(),
		nats.Timeout(b.cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.ReconnectBufSize(b.cfg.ReconnectBuffer),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("bus disconnected from NATS; reconnecting. Live events of other instances are lost meanwhile and direct methods to their devices fail", "err", err)
		}),
		nats.ReconnectHandler(b.reconnected),
		nats.ErrorHandler(b.asyncError),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
	}
	type dialed struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		nc, err := nats.Connect(urls, opts...)
		done <- dialed{nc, err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			return fmt.Errorf("bus: connect to NATS at %s: %w", redact(urls), d.err)
		}
		b.nc = d.nc
	case <-ctx.Done():
		go func() {
			if d := <-done; d.nc != nil {
				d.nc.Close()
			}
		}()
		return fmt.Errorf("bus: connect to NATS at %s: %w", redact(urls), ctx.Err())
	}
	if mp := int(b.nc.MaxPayload()); mp > 0 && mp < b.max {
		b.max = mp
	}
	b.log.Info("bus connected to NATS", "server", redact(b.nc.ConnectedUrlRedacted()), "max_message", b.max)
	return nil
}

var userinfo = regexp.MustCompile(`//[^@/]*@`)

// redact drops user and password from NATS URLs for logs.
func redact(urls string) string { return userinfo.ReplaceAllString(urls, "//") }

// reconnected tells the browsers to reload: they missed the other
// instances' events meanwhile.
func (b *Bus) reconnected(nc *nats.Conn) {
	b.log.Info("bus reconnected to NATS", "server", nc.ConnectedUrlRedacted())
	b.mu.RLock()
	peers := b.peers
	b.mu.RUnlock()
	if peers != nil {
		peers.Resync()
	}
}

// asyncError logs what the client reports outside a call: above all a
// slow consumer, a subscription whose pending bound was hit.
func (b *Bus) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		b.log.Debug("bus subscription full; NATS drops its messages", "subject", subject)
		return
	}
	b.log.Warn("bus error", "subject", subject, "err", err)
}

// Node is this instance's name.
func (b *Bus) Node() string { return b.node }

// Clustered reports whether the bus reaches other instances.
func (b *Bus) Clustered() bool { return b.nc != nil }

// Close stops the workers, drops the subscriptions and closes the
// connection after sending what was published.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.wg.Wait()
		if b.nc != nil {
			// Drain sends what is buffered and lets handlers finish, within
			// the client's drain timeout (30 s); the app bounds Close too.
			if err := b.nc.Drain(); err != nil {
				b.nc.Close()
			}
			<-b.closed
		}
	})
	return nil
}

// Stats are the bus's counters since Open.
type Stats struct {
	Relayed      int64 // live events sent
	BytesSent    int64 // bytes of the live events sent
	RelayDropped int64 // live events dropped: queue full, or the bus down
	Refused      int64 // messages not sent or not taken: above MaxMessage, or malformed
	RouteDropped int64 // pushes to other instances dropped: queue full
	PeerErrors   int64 // live events from other instances that did not apply
	SlowConsumer int64 // messages NATS dropped because a subscription was full
}

// Stats returns the counters.
func (b *Bus) Stats() Stats {
	st := Stats{
		Relayed: b.stats.relayed.Load(), RelayDropped: b.stats.relayDropped.Load(), Refused: b.stats.refused.Load(),
		RouteDropped: b.stats.routeDropped.Load(), PeerErrors: b.stats.peerErrors.Load(), BytesSent: b.stats.bytesSent.Load(),
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	st.SlowConsumer = b.dropped
	for _, s := range b.subs {
		st.SlowConsumer += b.droppedOf(s)
	}
	for _, s := range b.watched {
		st.SlowConsumer += b.droppedOf(s)
	}
	return st
}

// subscribe subscribes handler to subject with the pending bounds.
func (b *Bus) subscribe(subject string, handler nats.MsgHandler) error {
	sub, err := b.nc.Subscribe(subject, handler)
	if err != nil {
		return fmt.Errorf("bus: subscribe to %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(b.cfg.MaxPending, b.cfg.MaxPendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("bus: bound %s: %w", subject, err)
	}
	b.mu.Lock()
	b.subs = append(b.subs, sub)
	b.mu.Unlock()
	// The server learns of a subscription asynchronously: without a round
	// trip, what another instance publishes right after this returns may
	// find no interest and be dropped (an alert rule created at once was
	// not announced to an instance that had just started). A failed flush
	// is not fatal: the client subscribes again on reconnect.
	if err := b.nc.FlushTimeout(2 * time.Second); err != nil {
		b.log.Warn("bus: subscription not confirmed by the server yet", "subject", subject, "err", err)
	}
	return nil
}

// tooBig refuses a message above the bound; the server may allow more.
func (b *Bus) tooBig(m *nats.Msg) bool {
	if len(m.Data) <= b.max {
		return false
	}
	b.stats.refused.Add(1)
	b.log.Warn("bus message refused: too large", "subject", m.Subject, "bytes", len(m.Data), "max", b.max)
	return true
}

// Connected reports whether the bus is connected to NATS now.
func (b *Bus) Connected() bool { return b.nc != nil && b.nc.Status() == nats.CONNECTED }
