package mqtt

import (
	"context"

	"fieldhub/telemetry"
)

// discardIngester accepts every message without storing it.
type discardIngester struct{}

func (discardIngester) Submit(context.Context, ...telemetry.Message) error { return nil }

func (discardIngester) Enqueue(context.Context, ...telemetry.Message) (<-chan error, error) {
	done := make(chan error, 1)
	done <- nil
	return done, nil
}
