package mqtt

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"fieldhub/db"
)

// rawConnect is a CONNECT packet written byte by byte, so a test can send
// what no MQTT library would.
type rawConnect struct {
	protocol           string // "MQTT" unless set
	level              byte   // 4 unless set
	reservedFlag       bool
	clean              bool
	clientID           string
	willTopic, will    string
	willQoS            byte
	willRetain         bool
	username, password *string
}

func (c rawConnect) encode() []byte {
	if c.protocol == "" {
		c.protocol = "MQTT"
	}
	if c.level == 0 {
		c.level = 4
	}
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	var flags byte
	if c.reservedFlag {
		flags |= 0x01
	}
	if c.clean {
		flags |= 0x02
	}
	if c.willTopic != "" {
		flags |= 0x04 | c.willQoS<<3
	}
	if c.willRetain {
		flags |= 0x20
	}
	if c.password != nil {
		flags |= 0x40
	}
	if c.username != nil {
		flags |= 0x80
	}
	body := str(nil, c.protocol)
	body = append(body, c.level, flags, 0, 60) // keep-alive 60 s
	if c.level == 5 {
		body = append(body, 0) // no properties
	}
	body = str(body, c.clientID)
	if c.willTopic != "" {
		if c.level == 5 {
			body = append(body, 0)
		}
		body = str(body, c.willTopic)
		body = str(body, c.will)
	}
	if c.username != nil {
		body = str(body, *c.username)
	}
	if c.password != nil {
		body = str(body, *c.password)
	}
	pkt := []byte{0x10}
	for n := len(body); ; {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		pkt = append(pkt, b)
		if n == 0 {
			break
		}
	}
	return append(pkt, body...)
}

// errNoConnack means the hub closed the connection without answering.
var errNoConnack = errors.New("connection closed without CONNACK")

// connack sends a CONNECT over a bare TCP connection and returns the whole
// CONNACK the hub answers with.
func connack(t *testing.T, addr string, c rawConnect) ([]byte, error) {
	t.Helper()
	return connackOver(t, func() (net.Conn, error) { return net.Dial("tcp", addr) }, c)
}

// connackOver is connack over a connection dial makes (TLS, say).
func connackOver(t *testing.T, dial func() (net.Conn, error), c rawConnect) ([]byte, error) {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(c.encode()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	head := make([]byte, 2)
	if _, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil, errNoConnack
		}
		t.Fatal(err)
	}
	rest := make([]byte, head[1])
	if _, err := io.ReadFull(r, rest); err != nil {
		t.Fatalf("CONNACK % x cut short: %v", head, err)
	}
	got := append(head, rest...)
	if len(got) == 4 && got[3] != 0 {
		// A refusal ends the connection; nothing may follow the CONNACK.
		if more, err := r.ReadByte(); err == nil {
			t.Fatalf("CONNACK % x followed by % x, want the connection closed", got, more)
		}
	}
	return got, nil
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}

// TestConnackReturnCodes: every refused CONNECT on an MQTT 3.1.1 hub gets a
// 3.1.1 CONNACK (two bytes after the header, return code 1 to 5), never an
// MQTT 5 reason code; a CONNECT that breaks MQTT 3.1.1 gets no CONNACK at all
// ([MQTT-3.1.4-1]). Before the fix, protocol level 3 got 0x82 and a QoS 2 will
// 0x9B.
func TestConnackReturnCodes(t *testing.T) {
	h := newTestHub(t, func(cfg *Config) { cfg.PlainAddr = "127.0.0.1:0" })
	dev := h.device("dev1")
	other := h.device("dev2")
	h.device("off")
	off := false
	if _, err := h.db.UpdateDevice(context.Background(), "off", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	s := func(v string) *string { return &v }
	user := func(id string) *string { return s(h.host + "/" + id + "/?api-version=2021-04-12") }
	good := func() rawConnect {
		return rawConnect{clientID: "dev1", username: user("dev1"), password: s(h.token(dev, 0, time.Hour))}
	}
	with := func(f func(c *rawConnect)) rawConnect {
		c := good()
		f(&c)
		return c
	}
	const noConnack = -1
	tests := []struct {
		name    string
		connect rawConnect
		want    int // the return code, or noConnack
	}{
		{"accepted", good(), 0},
		{"MQTT 3.1 (MQIsdp, level 3)", with(func(c *rawConnect) { c.protocol, c.level = "MQIsdp", 3 }), 1},
		{"protocol level 3", with(func(c *rawConnect) { c.level = 3 }), 1},
		{"MQTT 5", with(func(c *rawConnect) { c.level = 5 }), 1},
		{"protocol level 9", with(func(c *rawConnect) { c.level = 9 }), 1},
		{"empty client id, clean session", with(func(c *rawConnect) { c.clientID, c.clean = "", true }), 2},
		{"empty client id, persistent session", with(func(c *rawConnect) { c.clientID = "" }), 2},
		{"user name not an IoT Hub user name", with(func(c *rawConnect) { c.username = s("dev1") }), 4},
		{"no user name", with(func(c *rawConnect) { c.username, c.password = nil, nil }), 4},
		{"password not a SAS token", with(func(c *rawConnect) { c.password = s("hunter2") }), 4},
		{"wrong key", with(func(c *rawConnect) { c.password = s(h.token(other, 0, time.Hour)) }), 5},
		{"expired token", with(func(c *rawConnect) { c.password = s(h.token(dev, 0, -time.Minute)) }), 5},
		{"no password", with(func(c *rawConnect) { c.password = nil }), 5},
		{"user name names another device", with(func(c *rawConnect) { c.username = user("dev2") }), 5},
		{"unknown device", with(func(c *rawConnect) { c.clientID, c.username = "ghost", user("ghost") }), 5},
		{"disabled device", with(func(c *rawConnect) { c.clientID, c.username = "off", user("off") }), 5},
		{"will on another topic", with(func(c *rawConnect) { c.willTopic, c.will = "devices/dev2/messages/events/", "x" }), 5},
		{"QoS 2 will", with(func(c *rawConnect) { c.willTopic, c.will, c.willQoS = "devices/dev1/messages/events/", "x", 2 }), 5},
		{"reserved flag set", with(func(c *rawConnect) { c.reservedFlag = true }), noConnack},
		{"not MQTT", with(func(c *rawConnect) { c.protocol = "HTTP" }), noConnack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := connack(t, h.broker.PlainAddr(), tt.connect)
			if tt.want == noConnack {
				if err == nil {
					t.Fatalf("CONNACK % x, want the connection closed without one", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v, want CONNACK return code %d", err, tt.want)
			}
			if len(got) != 4 || got[0] != 0x20 || got[1] != 2 {
				t.Fatalf("CONNACK % x, want an MQTT 3.1.1 CONNACK (20 02 …)", got)
			}
			if int(got[3]) != tt.want {
				t.Errorf("return code %#02x, want %d", got[3], tt.want)
			}
		})
	}
}
