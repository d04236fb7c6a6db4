package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/ingest"
	"fieldhub/live"
	"fieldhub/netlimit"
	"fieldhub/quota"
	"fieldhub/registry"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// Ingester stores device-to-cloud messages: Submit returns after commit,
// EnqueueFunc once queued (waiting for room), and calls done with the
// commit's outcome (unless it returned an error), in the order the calls
// returned, without blocking. ingest.Pipeline implements it.
type Ingester interface {
	Submit(ctx context.Context, msgs ...telemetry.Message) error
	EnqueueFunc(ctx context.Context, wait time.Duration, done func(error), msg telemetry.Message) error
	// HungUp is told of each device whose connection close was recorded.
	HungUp(ctx context.Context, deviceID string) error
}

// Authenticator is the one device authentication (registry.Registry).
type Authenticator interface {
	Authenticate(ctx context.Context, c registry.Credential, now time.Time) (registry.Identity, error)
}

// Store is what the broker keeps and reads (*db.DB; every store passes the
// suite db/storetest.RunMQTTSessions): the subscriptions of persistent
// sessions, which survive a restart; devices' connection state and the
// audit entries of connects; and what the periodic recheck of connections
// compares them with.
type Store interface {
	StoreSubscriptions(ctx context.Context, deviceID string, subs []db.Subscription) error
	ForgetSubscriptions(ctx context.Context, deviceID string, filters []string) error
	Subscriptions(ctx context.Context, deviceID string) ([]db.Subscription, error)

	// SetDeviceConnection records the connection of a device on node (this
	// instance) opening or closing, and returns the node that held it
	// before (db.DB.SetDeviceConnection).
	SetDeviceConnection(ctx context.Context, deviceID, node string, connected bool) (previous string, err error)
	RecordAudit(ctx context.Context, e db.AuditEntry) error

	AllDeviceCredentials(ctx context.Context) (map[string]db.DeviceCredentials, error)
	CAThumbprints(ctx context.Context) (map[string]bool, error)
	Device(ctx context.Context, deviceID string) (db.Device, error)
}

// Cluster is what the broker tells the other instances of a cluster
// (package bus); nil in a hub of one instance.
type Cluster interface {
	// TakeOver asks node to close its connection of the device, which has
	// connected to this instance since.
	TakeOver(node, deviceID string)
}

// Presence announces connections opening and closing to live viewers.
// live.Hub implements it.
type Presence interface {
	SetConnected(deviceID string, connected bool)
	PublishConnection(deviceID string, ev live.ConnectionEvent)
}

// Config is what a Broker needs. Store, Devices, Ingest and TLS are required.
type Config struct {
	// Addr is the MQTT-over-TLS listen address, like ":8883".
	Addr string
	// PlainAddr, when set, also serves MQTT without TLS; it must be a
	// loopback address (tests, local tools).
	PlainAddr string
	TLS       *tls.Config
	Store     Store
	// Devices authenticates devices; the SAS host names it accepts are its own.
	Devices Authenticator
	Ingest  Ingester
	// Presence may be nil.
	Presence Presence
	// Node names this instance in the store's connection state (default
	// "local"); Cluster, when set, hears of devices that moved here from
	// another node.
	Node    string
	Cluster Cluster
	// CloudMessages and Twins may be nil, which leaves those features off.
	CloudMessages CloudMessages
	Twins         Twins
	Logger        *slog.Logger
	Now           func() time.Time
	// RecheckInterval is how often connected devices are checked against
	// the registry (disabled, deleted, key rotated), which also catches
	// changes made by the CLI in another process (default 5 s).
	RecheckInterval time.Duration
	// SubmitTimeout bounds how long a telemetry publish waits for room in
	// the ingest queue before the connection is closed without PUBACK
	// (default 30 s, the PUBACK deadline of the SDKs).
	SubmitTimeout time.Duration
	// Quota holds each device to its message rate (the connection is read
	// no faster) and connect rate (CONNACK 3 beyond); nil limits nothing.
	Quota *quota.Devices
	// Refusals counts the telemetry refused (too large, queue full,
	// storage fault), for the metrics; nil counts nothing.
	Refusals *ingest.Refusals
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet of a
	// new connection, on every listener (default 10 s).
	ConnectTimeout time.Duration
	// Limits caps the connections of the TLS and plain listeners together
	// (zero: no caps). MQTT over WebSockets counts on the HTTPS listener.
	Limits netlimit.Limits
	// Health is the state of storage writes (reported by the ingest
	// pipeline): during a fault the broker logs failed writes at debug level,
	// since Health logged the fault once (default: one nobody reports to).
	Health *storage.Health
}

// Per-connection buffers of mochi (see New). With 100,000 idle devices
// every byte here is 100 KB.
const (
	clientWritesPending = 8
	clientReadBuffer    = 512
)

// Broker is the MQTT device endpoint: an embedded mochi broker whose hooks
// authenticate devices, confine them to their own topics and connect the
// protocol to ingest, commands and presence.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	server *mochi.Server
	ctx    context.Context // cancelled by Close; bounds work done for clients
	cancel context.CancelFunc
	// taking is cancelled when Close begins: read loops waiting for room
	// for telemetry give up (mochi's Close waits for them).
	taking     context.Context
	stopTaking context.CancelFunc

	tlsLn, plainLn *listener
	wsLn           *listener  // fed by WebSocketHandler
	wsConns        *connQueue // WebSocket connections on their way to wsLn

	mu       sync.RWMutex
	byClient map[*mochi.Client]*conn
	byDevice map[string]*conn
	// pending holds the outcome of authentication between CONNECT and the
	// established session, keyed by client.
	pending map[*mochi.Client]*conn

	methods methodCalls
	acking  ackWorkers // write PUBACKs after commits (acks.go)

	presence  chan presenceEvent
	unhook    []func()       // cancels the commands services' notifications
	wg        sync.WaitGroup // background goroutines
	closeOnce sync.Once
}

var _ commands.MethodTransport = (*Broker)(nil)

// New binds the listeners and prepares the broker; Start begins serving.
func New(cfg Config) (*Broker, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("mqtt broker: no store")
	case cfg.Devices == nil:
		return nil, errors.New("mqtt broker: no device registry to authenticate devices")
	case cfg.Ingest == nil:
		return nil, errors.New("mqtt broker: no ingest pipeline")
	case cfg.TLS == nil && cfg.Addr != "":
		return nil, errors.New("mqtt broker: no TLS configuration for the TLS listener")
	case cfg.Addr == "" && cfg.PlainAddr == "":
		return nil, errors.New("mqtt broker: no listen address")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Node == "" {
		cfg.Node = "local"
	}
	if cfg.Health == nil {
		cfg.Health = storage.NewHealth(cfg.Logger, nil, nil)
	}
	if cfg.RecheckInterval <= 0 {
		cfg.RecheckInterval = 5 * time.Second
	}
	if cfg.SubmitTimeout <= 0 {
		cfg.SubmitTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	b := &Broker{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "mqtt"),
		byClient: map[*mochi.Client]*conn{},
		byDevice: map[string]*conn{},
		pending:  map[*mochi.Client]*conn{},
		presence: make(chan presenceEvent, 4096),
	}
	b.methods.calls = map[string]*methodCall{}
	b.acking.max = runtime.GOMAXPROCS(0)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.taking, b.stopTaking = context.WithCancel(b.ctx)

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumQos = 1 // QoS 2 publishes are refused in OnPacketRead before this applies
	// mochi's outbound queue carries only what it routes by topic, and the
	// hub routes nothing through it: device publishes are handled by the
	// hooks, and every packet the hub sends (PUBACK, cloud-to-device,
	// methods, twins) is written to its one connection directly
	// (conn.write). Each slot is allocated for every connection.
	caps.MaximumClientWritesPending = clientWritesPending
	caps.MaximumPacketSize = ingest.MaxMessageSize + 16*1024 // body plus topic and header
	caps.MaximumSessionExpiryInterval = math.MaxUint32       // clean=false sessions live until the device returns
	caps.Compatibilities.ObscureNotAuthorized = false
	b.server = mochi.New(&mochi.Options{
		Capabilities: caps,
		// Over TLS this buffer only copies what crypto/tls has already
		// decrypted into its own record buffer, and the body of a larger
		// packet bypasses it: a small one costs no system calls and saves
		// its size on every idle connection.
		ClientNetReadBufferSize: clientReadBuffer,
		SysTopicResendInterval:  math.MaxInt32, // nobody may read $SYS; don't spend time on it
		// mochi logs every failed connection as a warning; the hooks log
		// what an operator needs, so only its errors come through.
		Logger: slog.New(levelFilter{b.log.Handler(), slog.LevelError}),
	})
	if err := b.server.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("mqtt broker: add hook: %w", err)
	}

	b.wsConns = newConnQueue()
	b.wsLn = &listener{id: "mqtt-ws", ln: b.wsConns, connectTimeout: cfg.ConnectTimeout}
	limiter := netlimit.New("mqtt", cfg.Limits, b.log)
	if cfg.Addr != "" {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("mqtt broker: listen on %s: %w", cfg.Addr, err)
		}
		tlsCfg := cfg.TLS.Clone()
		if tlsCfg.MinVersion == 0 {
			tlsCfg.MinVersion = tls.VersionTLS12
		}
		if tlsCfg.ClientAuth == tls.NoClientCert {
			// X.509 devices present certificates, SAS devices none;
			// authenticate checks them (auth.VerifyDeviceCertificate).
			tlsCfg.ClientAuth = tls.RequestClientCert
		}
		b.tlsLn = &listener{id: "mqtts", ln: limiter.Wrap(ln), tls: tlsCfg, connectTimeout: cfg.ConnectTimeout}
	}
	if cfg.PlainAddr != "" {
		if err := CheckPlainAddr(cfg.PlainAddr); err != nil {
			b.tlsLn.closeNow()
			return nil, err
		}
		ln, err := net.Listen("tcp", cfg.PlainAddr)
		if err != nil {
			b.tlsLn.closeNow()
			return nil, fmt.Errorf("mqtt broker: listen on %s: %w", cfg.PlainAddr, err)
		}
		b.plainLn = &listener{id: "mqtt-plain", ln: limiter.Wrap(ln), connectTimeout: cfg.ConnectTimeout}
	}
	return b, nil
}

// CheckPlainAddr refuses a plain (unencrypted) MQTT address reachable from
// other machines: device tokens would cross the network in the clear.
func CheckPlainAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("mqtt plain address %q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("mqtt plain address %q: plain MQTT is only allowed on a loopback address (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

// Start serves the listeners and starts the background work.
func (b *Broker) Start() error {
	for _, ln := range []*listener{b.tlsLn, b.plainLn, b.wsLn} {
		if ln == nil {
			continue
		}
		if err := b.server.AddListener(ln); err != nil {
			return fmt.Errorf("mqtt broker: add listener %s: %w", ln.id, err)
		}
	}
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("mqtt broker: serve: %w", err)
	}
	if b.cfg.CloudMessages != nil {
		b.unhook = append(b.unhook, b.cfg.CloudMessages.OnQueued(b.c2dQueued))
	}
	if b.cfg.Twins != nil {
		b.unhook = append(b.unhook, b.cfg.Twins.OnDesired(b.desiredChanged))
	}
	b.wg.Add(2)
	go b.runPresence()
	go b.runRecheck()
	return nil
}

// Addr is the bound TLS address ("" without a TLS listener).
func (b *Broker) Addr() string {
	if b.tlsLn == nil {
		return ""
	}
	return b.tlsLn.Address()
}

// PlainAddr is the bound plain address ("" when not enabled).
func (b *Broker) PlainAddr() string {
	if b.plainLn == nil {
		return ""
	}
	return b.plainLn.Address()
}

// Close stops taking telemetry, acknowledges what was already queued once it
// commits (for up to drainTimeout), closes every client, then records
// presence. Call it before draining the ingest pipeline.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.stopTaking()
		for _, cancel := range b.unhook {
			cancel()
		}
		b.mu.Lock()
		for _, c := range b.byClient {
			c.setReason("server shutting down")
		}
		b.mu.Unlock()
		// Messages committed but not acknowledged would come again after the
		// devices reconnect: stored twice.
		b.drainAcks(drainTimeout)
		// Waits for every client goroutine, so that OnDisconnect has run.
		_ = b.server.Close()
		b.tlsLn.closeNow()
		b.plainLn.closeNow()
		b.wsLn.closeNow()
		b.cancel()
		close(b.presence)
		b.acking.stop()
		b.wg.Wait()
	})
	return nil
}

// DisconnectDevice closes the device's connection, if any, recording
// reason in its log. It reports whether a connection was closed.
func (b *Broker) DisconnectDevice(deviceID, reason string) bool {
	b.mu.Lock()
	c := b.byDevice[deviceID]
	b.mu.Unlock()
	if c == nil {
		return false
	}
	c.close(reason)
	return true
}

// DisconnectAll closes every device's connection, recording reason in
// each device's log, and says how many it closed: the instance was taken
// for lost by the cluster (package cluster), which recorded them closed.
func (b *Broker) DisconnectAll(reason string) int {
	b.mu.Lock()
	conns := make([]*conn, 0, len(b.byDevice))
	for _, c := range b.byDevice {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.close(reason)
	}
	return len(conns)
}

// Connected reports whether the device has a live MQTT connection.
func (b *Broker) Connected(deviceID string) bool {
	return b.current(deviceID) != nil
}

// Connection describes the device's live MQTT connection (protocol "mqtt"
// or "mqtt-ws" for MQTT over WebSockets, remote address, At: since when),
// and reports whether it has one.
func (b *Broker) Connection(deviceID string) (live.ConnectionEvent, bool) {
	c := b.current(deviceID)
	if c == nil {
		return live.ConnectionEvent{}, false
	}
	proto := "mqtt"
	if c.listener == "mqtt-ws" {
		proto = "mqtt-ws"
	}
	return live.ConnectionEvent{Connected: true, Protocol: proto, Remote: c.remote, At: c.since, Node: b.clusterNode()}, true
}

// clusterNode names this instance in connection events when it is one of
// a cluster; "" when it is alone (no Cluster, or one that says it is not
// clustered: the bus of a single instance).
func (b *Broker) clusterNode() string {
	c, ok := b.cfg.Cluster.(interface{ Clustered() bool })
	if b.cfg.Cluster == nil || ok && !c.Clustered() {
		return ""
	}
	return b.cfg.Node
}

// current returns the device's live connection, or nil.
func (b *Broker) current(deviceID string) *conn {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.byDevice[deviceID]
}

// conn is one authenticated device connection.
type conn struct {
	deviceID string
	client   *mochi.Client
	// authType is the device's authentication type when it connected.
	authType string
	keyIndex int // SAS: the key that signed the token (0 primary, 1 secondary)
	// credential is what admitted the connection: the key that signed the
	// token, the certificate thumbprint, or the thumbprint of the CA the
	// certificate chains to. The connection ends when it is rotated or
	// removed.
	credential   string
	authMethod   string
	expiry       time.Time // of the token or certificate
	expiryReason string
	remote       string
	listener     string
	since        time.Time // when the connection was accepted

	expiryTimer *time.Timer
	done        chan struct{} // closed when the connection has ended
	// will is stored when the connection ends without DISCONNECT (nil: none).
	will *will

	// lastTopic is the last publish topic parsed on this connection, and
	// last what it parsed to (parsePublish); read goroutine only.
	lastTopic string
	last      Publish

	mu     sync.Mutex
	reason string // why the hub closed it; empty when the device left
	c2d    *c2dState
	acks   *ackState
}

// will is the will message of a connection, from its CONNECT.
type will struct {
	publish Publish
	payload []byte
}

func (c *conn) setReason(reason string) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	c.mu.Unlock()
}

func (c *conn) closeReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// close ends the connection. MQTT 3.1.1 has no server DISCONNECT, so the
// socket is simply closed.
func (c *conn) close(reason string) {
	c.setReason(reason)
	c.client.Stop(errors.New(reason))
}

// write sends a packet to the device. Publishes the hub originates go
// straight to the one connection they are for: the $iothub topics are the
// same for every device, so topic fan-out would reach every device.
func (c *conn) write(pk packets.Packet) error {
	if err := c.client.WritePacket(pk); err != nil {
		return fmt.Errorf("write to device %q: %w", c.deviceID, err)
	}
	return nil
}

// publish0 sends a QoS 0 publish.
func (c *conn) publish0(topic string, payload []byte) error {
	return c.write(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
}

// subscribed reports whether the device subscribed to filter (exact: only
// the SDKs' filters are allowed).
func (c *conn) subscribed(filter string) bool {
	_, ok := c.client.State.Subscriptions.Get(filter)
	return ok
}

// levelFilter passes on records at or above min.
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(a), f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(name), f.min}
}
