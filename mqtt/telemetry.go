package mqtt

import (
	"context"
	"errors"
	"fmt"

	"fieldhub/ingest"
	"fieldhub/telemetry"
)

// telemetry queues one device-to-cloud message for storage; the pipeline
// reports its commit to the connection's acknowledgement queue (acks.go),
// where ackLater has placed it. While the ingest queue is full it waits,
// holding the device back, for at most SubmitTimeout, and not once the
// broker is closing.
func (b *Broker) telemetry(c *conn, p Publish, body []byte) error {
	msg, err := b.telemetryMessage(c, p, body)
	if err != nil {
		b.cfg.Refusals.Add(ingest.ProtocolMQTT, ingest.ReasonTooLarge)
		return err
	}
	// The wait bound is EnqueueFunc's, not a context's: a timer per publish
	// was a quarter of this function's cost, and the queue is rarely full.
	if err := b.cfg.Ingest.EnqueueFunc(b.taking, b.cfg.SubmitTimeout, c.acks.settle, msg); err != nil {
		if errors.Is(err, ingest.ErrOverloaded) || errors.Is(err, context.DeadlineExceeded) {
			b.cfg.Refusals.Add(ingest.ProtocolMQTT, ingest.ReasonOverloaded)
		}
		return fmt.Errorf("store telemetry: %w", err)
	}
	return nil
}

// storeWill stores the will of a connection that ended without DISCONNECT
// and returns after commit: the connection is gone, so there is nobody to
// acknowledge it to. The hub, not mochi, sends wills: mochi skips the will
// when its read loop ends between packets, which is what happens when the
// hub closes a connection while it handles a packet (a refused publish, an
// operator's disconnect that races the read loop).
func (b *Broker) storeWill(c *conn) {
	msg, err := b.telemetryMessage(c, c.will.publish, c.will.payload)
	if err == nil {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.SubmitTimeout)
		defer cancel()
		err = b.cfg.Ingest.Submit(ctx, msg)
	}
	if err != nil {
		b.log.Warn("mqtt will message not stored", "device", c.deviceID, "err", err)
	}
}

// telemetryMessage builds the message of a publish and checks its size: the
// property bag in the topic counts with the body, as on Azure IoT Hub.
func (b *Broker) telemetryMessage(c *conn, p Publish, body []byte) (telemetry.Message, error) {
	msg := messageFromPublish(c.deviceID, c.authMethod, p, body)
	if err := ingest.CheckSize(&msg); err != nil {
		return telemetry.Message{}, fmt.Errorf("telemetry refused: %w", err)
	}
	msg.EnqueuedAt = b.cfg.Now()
	return msg, nil
}

// messageFromPublish builds the message of a telemetry publish: system
// properties from the bag's $.… keys, application properties from the rest.
// The body is used as is: mochi decodes every packet from a fresh buffer.
func messageFromPublish(deviceID, authMethod string, p Publish, body []byte) telemetry.Message {
	return telemetry.Message{
		DeviceID:        deviceID,
		MessageID:       p.System["$.mid"],
		CorrelationID:   p.System["$.cid"],
		ContentType:     p.System["$.ct"],
		ContentEncoding: p.System["$.ce"],
		To:              p.System["$.to"],
		UserID:          p.System["$.uid"],
		Properties:      p.App,
		Body:            body,
		AuthMethod:      authMethod,
		Protocol:        ingest.ProtocolMQTT,
	}
}
