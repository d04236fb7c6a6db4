package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/storage"
)

// Twins is the device twin service as the broker uses it; commands.Twins
// implements it.
type Twins interface {
	Get(ctx context.Context, deviceID string) (db.Twin, error)
	PatchReported(ctx context.Context, deviceID string, patch json.RawMessage) (int64, error)
	// OnDesired calls fn after every desired change with the patch as the
	// device receives it (with "$version").
	OnDesired(fn func(deviceID string, patch json.RawMessage, version int64)) (cancel func())
}

// twinError is the body of a failed twin request. The SDKs ignore the
// status in the topic and read errorCode from the body.
type twinError struct {
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
}

// Azure IoT Hub's error codes for twin requests.
const (
	twinArgumentInvalid = 400004
	twinNotFound        = 404001
	twinServerError     = 500001
)

// twinGet answers $iothub/twin/GET/ with both sections.
func (b *Broker) twinGet(c *conn, p Publish) error {
	if b.cfg.Twins == nil {
		return c.publish0(TwinResponseTopic(404, p.RID, 0), twinErrorBody(twinNotFound, "device twins are not enabled on this hub"))
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	tw, err := b.cfg.Twins.Get(ctx, c.deviceID)
	if err != nil {
		b.log.Error("twin get", "device", c.deviceID, "err", err)
		return c.publish0(TwinResponseTopic(500, p.RID, 0), twinErrorBody(twinServerError, "the twin could not be read"))
	}
	return c.publish0(TwinResponseTopic(200, p.RID, 0), commands.TwinDocument(tw))
}

// twinPatchReported applies a reported-properties patch and answers 204
// with the new version, or 400 with what was wrong.
func (b *Broker) twinPatchReported(c *conn, p Publish, body []byte) error {
	if b.cfg.Twins == nil {
		return c.publish0(TwinResponseTopic(404, p.RID, 0), twinErrorBody(twinNotFound, "device twins are not enabled on this hub"))
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	version, err := b.cfg.Twins.PatchReported(ctx, c.deviceID, body)
	var invalid *storage.InvalidError
	switch {
	case err == nil:
		return c.publish0(TwinResponseTopic(204, p.RID, version), nil)
	case errors.As(err, &invalid):
		return c.publish0(TwinResponseTopic(400, p.RID, 0), twinErrorBody(twinArgumentInvalid, "reported properties: "+err.Error()))
	default:
		b.log.Error("twin reported patch", "device", c.deviceID, "err", err)
		return c.publish0(TwinResponseTopic(500, p.RID, 0), twinErrorBody(twinServerError, "the reported properties could not be stored"))
	}
}

// desiredChanged pushes a desired patch to the device if it is connected
// and listening. A device that misses it (offline) GETs the twin when it
// comes back, as the SDKs do.
func (b *Broker) desiredChanged(deviceID string, patch json.RawMessage, version int64) {
	b.PushDesired(deviceID, patch, version)
}

// PushDesired sends a desired patch to the device if it is connected here
// and listening; the bus calls it for patches made on another instance of
// a cluster. It reports whether the device is connected here.
func (b *Broker) PushDesired(deviceID string, patch json.RawMessage, version int64) bool {
	c := b.current(deviceID)
	if c == nil {
		return false
	}
	if c.subscribed(desiredPatchesFilter) {
		b.sendLater(c, DesiredPatchTopic(version), patch)
	}
	return true
}

func twinErrorBody(code int, message string) []byte {
	out, _ := json.Marshal(twinError{ErrorCode: code, Message: message})
	return out
}
