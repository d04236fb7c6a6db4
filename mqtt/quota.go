package mqtt

import (
	"errors"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// errConnectThrottled ends a connection refused for connecting too often.
var errConnectThrottled = errors.New("device connects too often; refused with CONNACK 3 (server unavailable)")

// holdForQuota waits, before a telemetry publish is queued, until the
// device's message budget covers it. It runs on the connection's read
// loop, so while it waits nothing more is read from the device: TCP holds
// it back, and nothing it sent is dropped. The ack workers are not
// involved, so PUBACKs of earlier messages keep going out meanwhile.
func (b *Broker) holdForQuota(c *conn) error {
	wait := b.cfg.Quota.ReserveMessage(c.deviceID)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.done:
		return errConnClosed
	case <-b.taking.Done():
		return errConnClosed
	}
}

// admitConnect takes one connection from the device's budget. Over it the
// CONNECT is refused with return code 3, "server unavailable", which the
// SDKs retry later. The CONNACK is written here and the client stopped, so
// that mochi's own refusal (for a failed authentication) never follows it.
func (b *Broker) admitConnect(cl *mochi.Client, deviceID string) bool {
	if b.cfg.Quota.AllowConnect(deviceID) {
		return true
	}
	b.log.Info("mqtt connection refused: the device connects more often than its limit", "device", deviceID, "remote", cl.Net.Remote)
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: packets.Err3ServerUnavailable.Code})
	cl.Stop(errConnectThrottled)
	return false
}
