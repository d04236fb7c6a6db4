package ingest_test

import (
	"context"
	"path/filepath"
	"testing"

	"fieldhub/ingest"
	"fieldhub/telemetry"
)

// TestPipelineCountsByProtocol: what commits is counted by the protocol it
// came by (messages, readings, sizes), a message of a deleted device not at
// all, and every commit lands in the latency histogram; refusals counted by
// the endpoints come back in Stats.
func TestPipelineCountsByProtocol(t *testing.T) {
	ctx := context.Background()
	d, tel := openDB(t, filepath.Join(t.TempDir(), "f.db"), "dev1", "gone")
	p := newPipeline(t, tel, nil, ingest.Options{})
	https := telemetry.Message{DeviceID: "dev1", Body: []byte(`{"a":1,"b":{"c":2}}`), Protocol: ingest.ProtocolHTTPS, Properties: map[string]string{"k": "vv"}}
	mqtt := telemetry.Message{DeviceID: "dev1", Body: []byte(`{"a":3}`), Protocol: ingest.ProtocolMQTT}
	bare := telemetry.Message{DeviceID: "dev1", Body: []byte(`not json`)}
	if err := p.Submit(ctx, https, https, mqtt); err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(ctx, bare); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteDevice(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	gone := mqtt
	gone.DeviceID = "gone"
	p.Submit(ctx, gone) // ErrDeviceGone: not ingested
	r := p.Refusals()
	r.Add(ingest.ProtocolHTTPS, ingest.ReasonTooLarge)
	r.Add(ingest.ProtocolMQTT, ingest.ReasonOverloaded)
	r.Add(ingest.ProtocolMQTT, ingest.ReasonOverloaded)

	st := p.Stats()
	want := [len(ingest.Protocols)]ingest.Ingested{
		{Messages: 2, Readings: 4, Bytes: 2 * int64(len(https.Body)+3)},
		{Messages: 1, Readings: 1, Bytes: int64(len(mqtt.Body))},
		{Messages: 1, Readings: 0, Bytes: int64(len(bare.Body))},
	}
	if st.ByProtocol != want {
		t.Errorf("ingested by protocol = %+v, want %+v", st.ByProtocol, want)
	}
	if st.Refused[0][ingest.ReasonTooLarge] != 1 || st.Refused[1][ingest.ReasonOverloaded] != 2 || st.Refused[0][ingest.ReasonOverloaded] != 0 {
		t.Errorf("refused = %v", st.Refused)
	}
	lat := st.CommitSeconds
	// At least the three commits Submit waited for (the writer counts
	// Batches only after it woke the waiters, so it is no exact bound).
	if lat.Count < 3 {
		t.Errorf("commit latency counted %d commits, want at least 3", lat.Count)
	}
	if last := lat.Buckets[len(lat.Buckets)-1]; last > lat.Count || lat.Sum <= 0 {
		t.Errorf("histogram: last bucket %d of %d commits, sum %g s", last, lat.Count, lat.Sum)
	}
	for i := 1; i < len(lat.Buckets); i++ {
		if lat.Buckets[i] < lat.Buckets[i-1] {
			t.Errorf("buckets not cumulative: %v", lat.Buckets)
		}
	}
}
