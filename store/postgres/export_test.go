package postgres

import (
	"context"
	"time"
)

// WaitSlot reserves a slot and sleeps until it, returning the slot taken on
// the database's clock.
func (b *Bucket) WaitSlot(ctx context.Context) (time.Time, error) {
	slot, wait, err := b.reserve(ctx)
	if err != nil {
		return time.Time{}, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return slot, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}
