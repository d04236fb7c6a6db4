package db_test

import (
	"context"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
)

// BenchmarkCloudMessageRoundTrip measures one message's whole life: queue,
// receive (lock) and complete, with a settled history growing behind it.
func BenchmarkCloudMessageRoundTrip(b *testing.B) {
	ctx := context.Background()
	d := dbtest.MustOpen(b)
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"on":true}`)
	for b.Loop() {
		if _, err := d.EnqueueCloudMessage(ctx, db.NewCloudMessage{DeviceID: "dev1", Body: body, TTL: time.Hour, MaxDeliveryCount: 10}, 50); err != nil {
			b.Fatal(err)
		}
		m, _, err := d.ReceiveCloudMessage(ctx, "dev1", time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.SettleCloudMessage(ctx, "dev1", m.LockToken, db.SettleComplete); err != nil {
			b.Fatal(err)
		}
	}
}
