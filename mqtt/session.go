package mqtt

import (
	"context"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"fieldhub/db"
)

// Persistent sessions. mochi keeps a clean=false session (its
// subscriptions) in memory across reconnects, which covers the SDKs' token
// renewal. The subscriptions are also written to the database and restored
// when a device reconnects to a hub that has restarted since.

// restoreSession runs before mochi takes over any session in memory: a
// clean session forgets the stored subscriptions; a persistent one that
// mochi no longer has gets them back from the database.
func (b *Broker) restoreSession(cl *mochi.Client, pk packets.Packet) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if pk.Connect.Clean {
		if err := b.cfg.Store.ForgetSubscriptions(ctx, cl.ID, nil); err != nil {
			b.log.Error("forget stored subscriptions", "device", cl.ID, "err", err)
		}
		return
	}
	if _, ok := b.server.Clients.Get(cl.ID); ok {
		return // mochi still holds the session and hands it over
	}
	subs, err := b.storedSubscriptions(ctx, cl.ID)
	if err != nil {
		b.log.Error("restore stored subscriptions", "device", cl.ID, "err", err)
		return
	}
	for _, sub := range subs {
		if AllowedSubscription(cl.ID, sub.Filter) != nil {
			continue
		}
		b.server.Topics.Subscribe(cl.ID, sub)
		cl.State.Subscriptions.Add(sub.Filter, sub)
	}
}

// storeSubscriptions records granted subscriptions of a persistent session.
func (b *Broker) storeSubscriptions(ctx context.Context, deviceID string, subs []packets.Subscription) error {
	stored := make([]db.Subscription, len(subs))
	for i, sub := range subs {
		stored[i] = db.Subscription{Filter: sub.Filter, QoS: sub.Qos}
	}
	return b.cfg.Store.StoreSubscriptions(ctx, deviceID, stored)
}

func (b *Broker) storedSubscriptions(ctx context.Context, deviceID string) ([]packets.Subscription, error) {
	stored, err := b.cfg.Store.Subscriptions(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	subs := make([]packets.Subscription, len(stored))
	for i, sub := range stored {
		subs[i] = packets.Subscription{Filter: sub.Filter, Qos: sub.QoS}
	}
	return subs, nil
}
