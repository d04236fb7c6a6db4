package mqtt

import (
	"strings"
	"testing"
	"time"

	"fieldhub/ingest"
)

// TestTelemetryPropertiesCountTowardsMessageSize: the property bag in the
// topic counts towards the 256 KB message limit, as on Azure IoT Hub. A
// publish over it closes the connection without PUBACK and stores nothing.
func TestTelemetryPropertiesCountTowardsMessageSize(t *testing.T) {
	h := newTestHub(t)
	dev := h.device("dev1")
	body := strings.Repeat("x", ingest.MaxMessageSize-10_000)

	d := h.connect(dev)
	bag := "big=" + strings.Repeat("v", 20_000)
	tok := d.publish(t, "devices/dev1/messages/events/"+bag, 1, body)
	d.waitLost(t)
	if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
		t.Fatal("publish over the limit acknowledged")
	}
	if n := len(h.stored("dev1")); n != 0 {
		t.Fatalf("stored %d messages, want none", n)
	}

	d = h.connect(dev)
	tok = d.publish(t, "devices/dev1/messages/events/small=v", 1, body)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish within the limit: no PUBACK (%v)", tok.Error())
	}
	if n := len(h.stored("dev1")); n != 1 {
		t.Fatalf("stored %d messages, want 1", n)
	}
}
