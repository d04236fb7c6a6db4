package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"fieldhub/auth"
	"fieldhub/registry"
)

// hook plugs Fieldhub into mochi. mochi calls the On… methods from each
// client's own read goroutine, so work done here is ordered per connection
// and blocks only that connection.
type hook struct {
	mochi.HookBase
	b *Broker
}

func (h *hook) ID() string { return "fieldhub" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnConnectAuthenticate,
		mochi.OnACLCheck,
		mochi.OnSessionEstablish,
		mochi.OnSessionEstablished,
		mochi.OnDisconnect,
		mochi.OnPacketRead,
		mochi.OnPublish,
		mochi.OnSubscribed,
		mochi.OnUnsubscribed,
		mochi.OnWill,
	}, []byte{b})
}

// OnConnectAuthenticate checks client id, user name and SAS token. The
// outcome waits in pending until the session is established.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	c, err := h.b.authenticate(cl, pk)
	if err != nil {
		h.b.log.Info("mqtt connection refused", "client", cl.ID, "remote", cl.Net.Remote, "err", err)
		return false
	}
	if !h.b.admitConnect(cl, c.deviceID) { // quota.go
		return false
	}
	h.b.mu.Lock()
	h.b.pending[cl] = c
	h.b.mu.Unlock()
	return true
}

// OnACLCheck allows a device its own topics only. Refused publishes never
// get here (OnPacketRead closes the connection first); refused
// subscriptions get a failure code in SUBACK.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write {
		// OnPacketRead has already checked this publish's topic and closed
		// the connection if it was not allowed.
		return true
	}
	return AllowedSubscription(cl.ID, topic) == nil
}

// parsePublish is ParseDevicePublish for a publish read on c (nil: not
// established), remembering c's last topic and what it parsed to: OnPacketRead
// parses every publish and OnPublish, next on the same goroutine, finds it
// there; and devices publish telemetry on one topic, property bag and all,
// message after message, so its decoded bag (maps and unescaped values,
// several allocations) is reused. Sharing a Publish between messages is
// safe because nothing writes it once parsed. Runs on c's read goroutine
// only.
func parsePublish(c *conn, deviceID, topic string) (Publish, error) {
	if c != nil && topic == c.lastTopic && topic != "" {
		return c.last, nil
	}
	p, err := ParseDevicePublish(deviceID, topic)
	if err == nil && c != nil {
		c.lastTopic, c.last = topic, p
	}
	return p, err
}

// OnPacketRead closes the connection on a QoS 2 publish or a publish outside
// the device's topics (as Azure IoT Hub does), and settles cloud-to-device
// messages when the device acknowledges them.
func (h *hook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if code, err := checkConnect(pk); err != nil {
			h.b.log.Info("mqtt connection refused", "client", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote, "return_code", code, "err", err)
			h.b.refuse(cl, code)
			// Only ErrRejectPacket makes mochi stop (and close the connection).
			return pk, fmt.Errorf("%w: %w", packets.ErrRejectPacket, err)
		}
	case packets.Publish:
		c := h.b.connOf(cl)
		var refusal error
		if pk.FixedHeader.Qos > 1 {
			refusal = fmt.Errorf("QoS %d publish on %q refused: Fieldhub accepts QoS 0 and 1", pk.FixedHeader.Qos, pk.TopicName)
		} else if _, err := parsePublish(c, cl.ID, pk.TopicName); err != nil {
			refusal = fmt.Errorf("publish refused: %w", err)
		}
		if refusal != nil {
			if c != nil {
				c.setReason(refusal.Error())
			}
			// Only ErrRejectPacket makes mochi end the read loop.
			return pk, fmt.Errorf("%w: %w", packets.ErrRejectPacket, refusal)
		}
	case packets.Puback:
		if c := h.b.connOf(cl); c != nil {
			h.b.c2dAcked(c, pk.PacketID)
		}
	}
	return pk, nil
}

// OnSessionEstablish restores or forgets stored subscriptions before
// mochi decides whether the session is present.
func (h *hook) OnSessionEstablish(cl *mochi.Client, pk packets.Packet) {
	h.b.restoreSession(cl, pk)
}

// OnSessionEstablished makes the connection the device's current one.
func (h *hook) OnSessionEstablished(cl *mochi.Client, pk packets.Packet) {
	h.b.established(cl)
}

// OnDisconnect forgets the connection and records why it ended.
func (h *hook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	h.b.disconnected(cl, err)
}

// OnSubscribed stores the granted subscriptions of a persistent session and
// starts cloud-to-device delivery once the device listens.
func (h *hook) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	c := h.b.connOf(cl)
	if c == nil {
		return
	}
	var granted []packets.Subscription
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] >= 0x80 {
			h.b.log.Info("mqtt subscription refused", "device", c.deviceID, "filter", f.Filter)
			continue
		}
		granted = append(granted, f)
	}
	if len(granted) > 0 && !cl.Properties.Clean {
		ctx, cancel := context.WithTimeout(h.b.ctx, 10*time.Second)
		defer cancel()
		if err := h.b.storeSubscriptions(ctx, c.deviceID, granted); err != nil {
			h.b.log.Error("store subscriptions", "device", c.deviceID, "err", err)
		}
	}
	h.b.c2dWake(c)
}

// OnUnsubscribed forgets stored subscriptions.
func (h *hook) OnUnsubscribed(cl *mochi.Client, pk packets.Packet) {
	if cl.Properties.Clean {
		return
	}
	filters := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		filters[i] = f.Filter
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, 10*time.Second)
	defer cancel()
	if err := h.b.cfg.Store.ForgetSubscriptions(ctx, cl.ID, filters); err != nil {
		h.b.log.Error("forget subscriptions", "device", cl.ID, "err", err)
	}
}

// OnPublish handles a device publish. Telemetry is queued for storage and
// acknowledged once committed (acks.go); every other publish is handled
// here, and its PUBACK queued behind those of earlier publishes. mochi is
// told not to acknowledge anything itself (ErrRejectPacket), which also
// keeps it from routing the publish: nobody subscribes to device topics.
// On failure the connection is closed without PUBACK: MQTT 3.1.1 has no
// negative acknowledgement, and a device that gets no PUBACK sends the
// message again after it reconnects.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	c := h.b.connOf(cl)
	if c == nil {
		cl.Stop(errors.New("publish on a connection that is not established"))
		return pk, errRejectPacket
	}
	p, err := parsePublish(c, c.deviceID, pk.TopicName)
	if err == nil {
		err = h.b.handlePublish(c, p, pk)
	}
	if err != nil && !errors.Is(err, errConnClosed) {
		h.b.log.Warn("mqtt publish failed; closing the connection without PUBACK", "device", c.deviceID, "topic", pk.TopicName, "err", err)
		c.close("publish failed: " + err.Error())
	}
	return pk, errRejectPacket
}

// errRejectPacket is packets.ErrRejectPacket as an error once: the Code
// struct would be copied to the heap at every return.
var errRejectPacket error = packets.ErrRejectPacket

// handlePublish hands a publish to its service. Telemetry first takes a
// place among the device's publishes in flight, so that no more than
// maxPublishesInFlight of its messages wait for storage; anything else is
// handled at once — a method response is not held up by telemetry the
// device sent before it — and then queues its PUBACK behind theirs.
func (b *Broker) handlePublish(c *conn, p Publish, pk packets.Packet) error {
	a := pendingAck{packetID: pk.PacketID, sendAck: pk.FixedHeader.Qos == 1}
	if p.Kind == Telemetry {
		if err := b.holdForQuota(c); err != nil { // quota.go
			return err
		}
		if err := b.reserveAck(c); err != nil {
			return err
		}
		if !b.ackLater(c, a) {
			return errConnClosed
		}
		if err := b.telemetry(c, p, pk.Payload); err != nil {
			b.ackWithdraw(c)
			return err
		}
		return nil
	}
	var err error
	switch p.Kind {
	case MethodResponse:
		b.methodResponse(c, p, pk.Payload)
	case TwinGet:
		err = b.twinGet(c, p)
	case TwinPatchReported:
		err = b.twinPatchReported(c, p, pk.Payload)
	}
	if err != nil || !a.sendAck {
		return err
	}
	if err := b.reserveAck(c); err != nil {
		return err
	}
	a.settled = true
	b.ackLater(c, a)
	return nil
}

// OnWill keeps mochi from retaining a will. The hub stores wills itself
// (storeWill) and keeps no retained messages; mochi's delivery of the will
// reaches no one, as nobody can subscribe to a telemetry topic, but a
// retained will would stay in memory, one per topic a device makes up.
func (h *hook) OnWill(cl *mochi.Client, will mochi.Will) (mochi.Will, error) {
	will.Retain = false
	return will, nil
}

// MQTT 3.1.1 CONNACK return codes. mochi speaks MQTT 5 and would answer some
// refusals with MQTT 5 reason codes, which 3.1.1 clients cannot read.
const (
	codeUnacceptableProtocol = 0x01 // packets.Err3UnsupportedProtocolVersion
	codeIdentifierRejected   = 0x02 // packets.Err3ClientIdentifierNotValid
	codeBadUsernamePassword  = 0x04 // packets.ErrMalformedUsernameOrPassword: malformed, in 3.1.1's words
	codeNotAuthorized        = 0x05 // packets.Err3NotAuthorized
)

// checkConnect checks what a CONNECT says about itself, before mochi
// validates it (with MQTT 5 reason codes) and before authentication. It
// returns the 3.1.1 return code to refuse with, or 0 for a CONNECT that
// breaks MQTT 3.1.1, which gets no CONNACK at all [MQTT-3.1.4-1].
func checkConnect(pk packets.Packet) (byte, error) {
	switch name := string(pk.Connect.ProtocolName); {
	case name == "MQTT" && pk.ProtocolVersion == 4:
	case name == "MQTT" || name == "MQIsdp":
		return codeUnacceptableProtocol, fmt.Errorf("MQTT protocol level %d: only MQTT 3.1.1 (level 4) is supported", pk.ProtocolVersion)
	default:
		return 0, fmt.Errorf("protocol name %q is not MQTT", name)
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return 0, fmt.Errorf("CONNECT breaks MQTT 3.1.1: %s", code.Reason)
	}
	id := pk.Connect.ClientIdentifier
	if id == "" {
		return codeIdentifierRejected, errors.New("empty client id: the client id must be the device id")
	}
	if _, _, err := ParseUsername(string(pk.Connect.Username)); err != nil {
		return codeBadUsernamePassword, err
	}
	if len(pk.Connect.Password) > 0 {
		if _, err := auth.ParseSAS(string(pk.Connect.Password)); err != nil {
			return codeBadUsernamePassword, err
		}
	}
	if pk.Connect.WillFlag {
		if p, err := ParseDevicePublish(id, pk.Connect.WillTopic); err != nil || p.Kind != Telemetry {
			return codeNotAuthorized, fmt.Errorf("will topic %q: a will message must be telemetry on devices/%s/messages/events/", pk.Connect.WillTopic, id)
		}
		if pk.Connect.WillQos > 1 {
			return codeNotAuthorized, fmt.Errorf("QoS %d will: Fieldhub accepts QoS 0 and 1", pk.Connect.WillQos)
		}
	}
	return 0, nil
}

// refuse answers a CONNECT with an MQTT 3.1.1 CONNACK carrying code; code 0
// sends nothing. It runs before mochi has read the CONNECT's protocol level,
// so the CONNACK is encoded as 3.1.1 whatever level the client asked for.
func (b *Broker) refuse(cl *mochi.Client, code byte) {
	if code == 0 {
		return
	}
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code})
}

// authenticate checks who a CONNECT that passed checkConnect comes from:
// client id = device id, user name naming the same device, and by the one
// device authentication (registry.Authenticate) an enabled device whose
// password is a SAS token signed with one of its keys or, without a
// password, whose client certificate proves it is the X.509 device. mochi
// refuses with CONNACK 5, not authorized.
func (b *Broker) authenticate(cl *mochi.Client, pk packets.Packet) (*conn, error) {
	id := pk.Connect.ClientIdentifier
	_, userDevice, err := ParseUsername(string(pk.Connect.Username))
	if err != nil {
		return nil, err
	}
	if userDevice != id {
		return nil, fmt.Errorf("user name names device %q but the client id is %q", userDevice, id)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	cred := registry.Credential{DeviceID: id, SAS: string(pk.Connect.Password)}
	if cred.SAS == "" {
		cred.Chain = peerCertificates(cl.Net.Conn)
	}
	who, err := b.cfg.Devices.Authenticate(ctx, cred, b.cfg.Now())
	if err != nil {
		return nil, err
	}
	c := &conn{
		deviceID:   id,
		authType:   who.Device.Auth.Type,
		authMethod: who.Method,
		credential: who.Credential,
		expiry:     who.Expires,
		remote:     cl.Net.Remote,
		listener:   cl.Net.Listener,
		done:       make(chan struct{}),
		c2d:        newC2DState(),
	}
	c.acks = b.newAckState(c)
	if pk.Connect.WillFlag {
		// checkConnect has made sure the will is telemetry of this device.
		p, err := ParseDevicePublish(id, pk.Connect.WillTopic)
		if err != nil {
			return nil, fmt.Errorf("will topic: %w", err)
		}
		c.will = &will{publish: p, payload: pk.Connect.WillPayload}
	}
	c.expiryReason = "SAS token expired"
	if who.Device.Auth.X509() {
		c.expiryReason = "certificate expired"
	}
	if who.Method == auth.AuthSASSecondary {
		c.keyIndex = 1
	}
	return c, nil
}

// peerCertificates returns the certificate chain a client presented in its
// TLS handshake (nil without TLS or without a certificate). mochi has read
// the CONNECT, so the handshake is complete.
func peerCertificates(nc net.Conn) []*x509.Certificate {
	switch c := nc.(type) {
	case interface{ ConnectionState() tls.ConnectionState }:
		return c.ConnectionState().PeerCertificates
	case *wsConn:
		return c.peerCerts
	}
	return nil
}

// connOf returns the established connection of a client, or nil.
func (b *Broker) connOf(cl *mochi.Client) *conn {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.byClient[cl]
}

// established registers an authenticated connection as the device's
// current one. mochi has already dropped any older connection with the same
// client id (taking over its session); it is closed here too in case it
// still runs.
func (b *Broker) established(cl *mochi.Client) {
	b.mu.Lock()
	c := b.pending[cl]
	delete(b.pending, cl)
	if c == nil {
		b.mu.Unlock()
		cl.Stop(errors.New("session without authentication"))
		return
	}
	c.client = cl
	old := b.byDevice[c.deviceID]
	c.since = b.cfg.Now()
	b.byDevice[c.deviceID] = c
	b.byClient[cl] = c
	b.mu.Unlock()
	if old != nil {
		old.close("taken over by a new connection")
	}
	if wait := c.expiry.Sub(b.cfg.Now()); wait > 0 {
		c.expiryTimer = time.AfterFunc(wait, func() { c.close(c.expiryReason) })
	} else {
		c.close(c.expiryReason)
	}
	b.log.Info("device connected", "device", c.deviceID, "remote", c.remote, "auth", c.authMethod, "session_present", cl.State.Subscriptions.Len() > 0)
	b.announce(presenceEvent{deviceID: c.deviceID, connected: true, remote: c.remote, authMethod: c.authMethod, at: c.since})
	b.c2dWake(c) // messages queued while the device was away
}

// disconnected forgets a connection and records why it ended.
func (b *Broker) disconnected(cl *mochi.Client, err error) {
	b.mu.Lock()
	delete(b.pending, cl)
	c := b.byClient[cl]
	delete(b.byClient, cl)
	if c != nil && b.byDevice[c.deviceID] == c {
		delete(b.byDevice, c.deviceID)
	}
	b.mu.Unlock()
	if c == nil {
		return
	}
	if c.expiryTimer != nil {
		c.expiryTimer.Stop()
	}
	close(c.done)
	b.c2dAbandonAll(c)
	if c.will != nil && !sentDisconnect(cl) {
		b.storeWill(c)
	}
	reason := c.closeReason()
	if reason == "" {
		reason = describeDisconnect(err, cl.StopCause())
	}
	b.log.Info("device disconnected", "device", c.deviceID, "remote", c.remote, "reason", reason)
	b.announce(presenceEvent{deviceID: c.deviceID, connected: false, remote: c.remote, reason: reason, at: b.cfg.Now()})
}

// sentDisconnect reports whether a client ended its connection with
// DISCONNECT, the one ending that discards its will [MQTT-3.1.2-10]. mochi
// stops the client with CodeDisconnect then; a connection the hub stopped
// first keeps the hub's cause.
func sentDisconnect(cl *mochi.Client) bool {
	var code packets.Code
	return errors.As(cl.StopCause(), &code) && code == packets.CodeDisconnect
}

// describeDisconnect says in words why a connection the hub did not close
// ended.
func describeDisconnect(readErr, cause error) string {
	var code packets.Code
	if errors.As(cause, &code) {
		switch code {
		case packets.ErrSessionTakenOver:
			return "taken over by a new connection"
		case packets.ErrServerShuttingDown:
			return "server shutting down"
		case packets.CodeDisconnect:
			return "device disconnected"
		}
	}
	var ne net.Error
	switch {
	case readErr == nil:
		return "device disconnected"
	case errors.Is(readErr, io.EOF):
		return "connection closed by the device without DISCONNECT"
	case errors.As(readErr, &ne) && ne.Timeout():
		return "keep-alive timeout"
	}
	return "connection lost: " + readErr.Error()
}
