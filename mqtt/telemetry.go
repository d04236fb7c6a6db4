package mqtt

import (
	"context"
	"fmt"

	"fieldhub/ingest"
)

// telemetry stores one device-to-cloud message and returns after commit.
func (b *Broker) telemetry(c *conn, p Publish, body []byte) error {
	if len(body) > ingest.MaxMessageSize {
		return fmt.Errorf("telemetry body is %d bytes, the limit is %d", len(body), ingest.MaxMessageSize)
	}
	msg := messageFromPublish(c.deviceID, c.authMethod, p, body)
	msg.EnqueuedAt = b.cfg.Now()
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.SubmitTimeout)
	defer cancel()
	if err := b.cfg.Ingest.Submit(ctx, msg); err != nil {
		return fmt.Errorf("store telemetry: %w", err)
	}
	return nil
}

// messageFromPublish builds the message of a telemetry publish: system
// properties from the bag's $.… keys, application properties from the rest.
// The body is used as is: mochi decodes every packet from a fresh buffer.
func messageFromPublish(deviceID, authMethod string, p Publish, body []byte) ingest.Message {
	return ingest.Message{
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
	}
}
