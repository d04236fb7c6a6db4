package mqtt

import (
	"context"

	"fieldhub/ingest"
)

// discardIngester accepts every message without storing it.
type discardIngester struct{}

func (discardIngester) Submit(context.Context, ...ingest.Message) error { return nil }

func (discardIngester) Enqueue(context.Context, ...ingest.Message) (<-chan error, error) {
	done := make(chan error, 1)
	done <- nil
	return done, nil
}
