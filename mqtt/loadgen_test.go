package mqtt

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// loadClient is a minimal MQTT 3.1.1 publisher for benchmarks: CONNECT,
// then QoS 1 publishes with one in flight, timing each PUBACK. It is far
// lighter than a full client library, so the load generator takes as
// little as possible of the CPU the broker is measured on.
type loadClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte
	id   uint16
}

func dialLoad(addr string, cfg *tls.Config, clientID, username, password string) (*loadClient, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	c := &loadClient{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	var vh []byte
	vh = appendString(vh, "MQTT")
	vh = append(vh, 4, 0x80|0x40, 0, 180) // level 4; username and password; clean=false; keepalive 180 s
	vh = appendString(vh, clientID)
	vh = appendString(vh, username)
	vh = appendString(vh, password)
	if err := c.writePacket(0x10, vh); err != nil {
		conn.Close()
		return nil, err
	}
	typ, body, err := c.readPacket()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if typ != 0x20 || len(body) != 2 || body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connect refused: packet %#x %v", typ, body)
	}
	return c, nil
}

// publish sends one QoS 1 message and waits for its PUBACK.
func (c *loadClient) publish(topic string, payload []byte) (time.Duration, error) {
	c.id++
	if c.id == 0 {
		c.id = 1
	}
	c.buf = appendString(c.buf[:0], topic)
	c.buf = binary.BigEndian.AppendUint16(c.buf, c.id)
	c.buf = append(c.buf, payload...)
	start := time.Now()
	if err := c.writePacket(0x32, c.buf); err != nil {
		return 0, err
	}
	for {
		typ, body, err := c.readPacket()
		if err != nil {
			return 0, fmt.Errorf("wait for PUBACK: %w", err)
		}
		if typ == 0x40 && len(body) == 2 && binary.BigEndian.Uint16(body) == c.id {
			return time.Since(start), nil
		}
	}
}

func (c *loadClient) close() {
	c.w.Write([]byte{0xe0, 0}) // DISCONNECT
	c.w.Flush()
	c.conn.Close()
}

func (c *loadClient) writePacket(header byte, body []byte) error {
	c.w.WriteByte(header)
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		c.w.WriteByte(b)
		if n == 0 {
			break
		}
	}
	c.w.Write(body)
	return c.w.Flush()
}

func (c *loadClient) readPacket() (byte, []byte, error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&127) * mul
		mul *= 128
		if b&128 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h & 0xf0, body, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
