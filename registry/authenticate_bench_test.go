package registry_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/registry"
)

// BenchmarkAuthenticateRemembered is what every HTTPS request of a device
// reusing its SAS token costs: 1,000 devices, each presenting the token that
// verified before, from parallel goroutines, with the clock past the
// entries' second (as a device sending every few seconds finds them), so
// that the store's credentials version vouches for them.
func BenchmarkAuthenticateRemembered(b *testing.B) {
	ctx := context.Background()
	store := dbtest.MustOpen(b)
	now := time.Now().UTC()
	reg := registry.New(registry.Config{Store: store, Audit: store, Now: func() time.Time { return now }})
	const devices = 1000
	creds := make([]registry.Credential, devices)
	for i := range creds {
		id := fmt.Sprintf("d%04d", i)
		dev, err := store.CreateDevice(ctx, db.NewDevice{DeviceID: id})
		if err != nil {
			b.Fatal(err)
		}
		tok, err := auth.SignSAS("hub/devices/"+id, dev.PrimaryKey, now.Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		creds[i] = registry.Credential{DeviceID: id, SAS: tok}
		if _, err := reg.Authenticate(ctx, creds[i], now); err != nil {
			b.Fatal(err)
		}
	}
	later := now.Add(2 * time.Second)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := creds[next.Add(1)%devices]
			if _, err := reg.Authenticate(ctx, c, later); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
