package mqtt

import (
	"context"
	"time"

	"fieldhub/telemetry"
)

// discardIngester accepts every message without storing it.
type discardIngester struct{}

func (discardIngester) Submit(context.Context, ...telemetry.Message) error { return nil }

func (discardIngester) HungUp(context.Context, string) error { return nil }

func (discardIngester) EnqueueFunc(_ context.Context, _ time.Duration, done func(error), _ telemetry.Message) error {
	done(nil)
	return nil
}
