package postgres

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batchreset/batchreset/store"
)

// WaitSlot reserves a slot and sleeps until it, returning the slot taken on
// the database's clock.
func (b *Bucket) WaitSlot(ctx context.Context) (time.Time, error) {
	slot, local, err := b.reserve(ctx, time.Time{})
	if err != nil {
		return time.Time{}, err
	}
	t := time.NewTimer(time.Until(local))
	defer t.Stop()
	select {
	case <-t.C:
		return slot, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// Counter counts the statements a Store sends, for benchmarks.
type Counter struct {
	stmts, bucket atomic.Int64
}

// OpenCounted is Open with every statement counted.
func OpenCounted(ctx context.Context, connString string) (*Store, *Counter, error) {
	c := &Counter{}
	s, err := open(ctx, connString, c)
	return s, c, err
}

func (c *Counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	c.stmts.Add(1)
	if strings.Contains(data.SQL, "rate_buckets") {
		c.bucket.Add(1)
	}
	return ctx
}

func (c *Counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Statements returns the statements counted since the last Reset.
func (c *Counter) Statements() int64 { return c.stmts.Load() }

// BucketStatements returns the rate-bucket statements among them.
func (c *Counter) BucketStatements() int64 { return c.bucket.Load() }

// Reset sets the counts to zero.
func (c *Counter) Reset() { c.stmts.Store(0); c.bucket.Store(0) }

// SaveBatch writes jobs as one batch of concurrent Saves would be written,
// and returns each Save's outcome.
func (q *Queue) SaveBatch(ctx context.Context, jobs []store.Job) []error {
	batch := make([]*saveReq, len(jobs))
	for i := range jobs {
		batch[i] = &saveReq{ctx: ctx, j: jobs[i], done: make(chan struct{})}
	}
	q.writeBatch(batch)
	errs := make([]error, len(batch))
	for i, r := range batch {
		errs[i] = r.err
	}
	return errs
}

// Pool returns the Store's pool, for looking behind its back.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
