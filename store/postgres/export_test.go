package postgres

import (
	"context"
	"time"
)

// WaitSlot is Wait, returning the slot it took on the database's clock.
func (b *Bucket) WaitSlot(ctx context.Context) (time.Time, error) { return b.wait(ctx) }
