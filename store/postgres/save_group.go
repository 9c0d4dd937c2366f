package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchreset/batchreset/store"
)

// saveGroup gathers the concurrent Saves of one Queue into one statement
// (group commit). There is no writer goroutine: the first Save to find the
// group idle leads, writing itself and every Save queued before its
// statement left; when it is done it hands the lead to the first Save that
// queued meanwhile, so a Save never waits for more than the statement in
// progress and its own.
type saveGroup struct {
	// multi is held by every statement that writes several of the Queue's
	// rows (a batch, Renew, Release), so that two of them never lock the
	// same rows in opposite orders and deadlock each other.
	multi sync.Mutex

	mu      sync.Mutex // guards the fields below and every saveReq's leader and taken
	pending []*saveReq // waiting for the next statement, in arrival order
	busy    bool       // a leader is writing
}

// saveReq is one Save waiting in a saveGroup.
type saveReq struct {
	ctx  context.Context
	j    store.Job
	lead chan struct{} // closed when this Save is to write the next batch
	done chan struct{} // closed once err is set
	err  error

	leader bool // lead is closed
	taken  bool // in a batch being written
}

// maxSaveBatch caps the jobs of one statement, which sends 13 arrays of
// this length.
const maxSaveBatch = 512

// save writes j with the next statement of the group and returns its
// outcome for j.
func (g *saveGroup) save(ctx context.Context, q *Queue, j *store.Job) error {
	r := &saveReq{ctx: ctx, j: *j, lead: make(chan struct{}), done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if !g.busy {
		g.busy, r.leader = true, true
		close(r.lead)
	}
	g.mu.Unlock()

	select {
	case <-r.done:
		return r.err
	case <-r.lead:
	case <-ctx.Done():
		g.mu.Lock()
		switch {
		case r.leader:
			// Handed the lead as ctx ended: lead anyway, for the others.
		case !r.taken:
			for i, p := range g.pending {
				if p == r {
					g.pending = append(g.pending[:i], g.pending[i+1:]...)
					break
				}
			}
			g.mu.Unlock()
			return fmt.Errorf("save job %d (%s): %w", j.ID, j.InstanceID, ctx.Err())
		default:
			// In a statement on its way: it may or may not commit.
			g.mu.Unlock()
			return fmt.Errorf("save job %d (%s): %w", j.ID, j.InstanceID, ctx.Err())
		}
		g.mu.Unlock()
	}

	g.mu.Lock()
	batch := g.take()
	g.mu.Unlock()
	q.writeBatch(batch)
	g.mu.Lock()
	if len(g.pending) == 0 {
		g.busy = false
	} else {
		next := g.pending[0]
		next.leader = true
		close(next.lead)
	}
	g.mu.Unlock()
	<-r.done // r was first in line, so in batch
	return r.err
}

// take removes the next batch from pending: up to maxSaveBatch Saves in
// arrival order, at most one per job (a job's next Save waits for the
// following statement). g.mu must be held.
func (g *saveGroup) take() []*saveReq {
	var batch, rest []*saveReq
	seen := make(map[int64]bool, min(len(g.pending), maxSaveBatch))
	for _, r := range g.pending {
		if len(batch) == maxSaveBatch || seen[r.j.ID] {
			rest = append(rest, r)
			continue
		}
		seen[r.j.ID] = true
		r.taken = true
		batch = append(batch, r)
	}
	g.pending = rest
	return batch
}

// batchContext returns the context of a statement written for batch: it
// carries the first Save's values and ends when every Save of the batch has
// given up waiting, not when one has.
func batchContext(batch []*saveReq) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, r := range batch {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// writeBatch writes batch and gives every Save of it its outcome.
func (q *Queue) writeBatch(batch []*saveReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	ctx, cancel := batchContext(batch)
	defer cancel()
	if len(batch) == 1 {
		batch[0].err = q.saveOne(ctx, &batch[0].j)
		return
	}
	saved, asked, err := q.saveMany(ctx, batch)
	switch code := pgCode(err); {
	case code == codeUniqueViolation || code == codeDeadlockDetected:
		// The statement wrote nothing: an instance of one job is in flight
		// in another run, or two runs' batches locked the same instances
		// in opposite orders. One statement per job says which.
		for _, r := range batch {
			r.err = q.saveOne(ctx, &r.j)
		}
		return
	case err != nil:
		for _, r := range batch {
			r.err = fmt.Errorf("save job %d (%s): %w", r.j.ID, r.j.InstanceID, err)
		}
		return
	}
	for _, r := range batch {
		if saved[r.j.ID] {
			q.saved(&r.j, asked)
		} else {
			r.err = q.unsaved(ctx, &r.j)
		}
	}
}

// saveMany is saveOne's statement for several jobs at once, each row under
// the same conditions as there. It returns the IDs of the jobs written and
// when the statement was sent.
func (q *Queue) saveMany(ctx context.Context, batch []*saveReq) (map[int64]bool, time.Time, error) {
	const saveManySQL = `UPDATE jobs
		SET status = s.status,
		    request_id = s.request_id,
		    prev_request_id = s.prev_request_id,
		    error_code = s.error_code,
		    error_message = s.error_message,
		    attempts = s.attempts,
		    not_before = coalesce(s.not_before, jobs.not_before),
		    intent_at = s.intent_at,
		    submitted_at = s.submitted_at,
		    finished_at = s.finished_at,
		    prev_blueprint_id = s.prev_blueprint_id,
		    hook_phase = s.hook_phase,
		    updated_at = now(),
		    lease_owner = CASE WHEN s.terminal THEN NULL ELSE jobs.lease_owner END,
		    lease_expires_at = CASE WHEN s.terminal THEN NULL ELSE now() + $2 * interval '1 microsecond' END
		FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
		            $10::integer[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::boolean[], $17::text[], $18::text[])
		     AS s(id, token, status, request_id, prev_request_id, error_code, error_message,
		          attempts, not_before, intent_at, submitted_at, finished_at, terminal, prev_blueprint_id, hook_phase)
		WHERE jobs.id = s.id
		  AND jobs.lease_token = s.token
		  AND jobs.lease_owner = $1
		  AND jobs.run = $16
		  AND (s.status <> 'submitting' OR (jobs.lease_expires_at > now()
		       AND coalesce((SELECT control FROM runs WHERE name = $16), 'running') = 'running'
		       AND EXISTS (` + heldSQL + `)))
		RETURNING jobs.id`
	n := len(batch)
	var (
		ids, tokens                                = make([]int64, n), make([]int64, n)
		statuses, reqIDs, prevIDs, codes, msgs     = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prevBPs                                    = make([]string, n)
		attempts                                   = make([]int, n)
		notBefore, intentAt, submittedAt, finished = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		terminal                                   = make([]bool, n)
		hooks                                      = make([]string, n)
	)
	for i, r := range batch {
		j := &r.j
		ids[i], tokens[i] = j.ID, j.Fence
		statuses[i], reqIDs[i], prevIDs[i], codes[i], msgs[i] = string(j.Status), j.RequestID, j.PrevRequestID, j.ErrorCode, j.ErrorMessage
		attempts[i], prevBPs[i] = j.Attempts, j.PrevBlueprintID
		notBefore[i], intentAt[i], submittedAt[i], finished[i] = nullTime(j.NotBefore), nullTime(j.IntentAt), nullTime(j.SubmittedAt), nullTime(j.FinishedAt)
		terminal[i] = j.Status.Terminal()
		hooks[i] = string(j.HookPhase)
	}
	q.group.multi.Lock()
	defer q.group.multi.Unlock()
	asked := time.Now()
	rows, err := q.s.pool.Query(ctx, saveManySQL, q.owner, micros(q.ttl),
		ids, tokens, statuses, reqIDs, prevIDs, codes, msgs, attempts, notBefore, intentAt, submittedAt, finished, terminal,
		q.run, prevBPs, hooks)
	if err != nil {
		return nil, asked, err
	}
	saved := make(map[int64]bool, n)
	var id int64
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, asked, err
		}
		saved[id] = true
	}
	return saved, asked, rows.Err()
}
