package csv

import (
	"context"
	"fmt"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Requeue makes the finished jobs of the named instances pending again, for
// a retry: each gets a journal record, durable before Requeue returns, that
// clears what the finished attempt left (its RequestID, the operation seen
// before it, its error, attempts and times except IntentAt, which keeps when
// a reset was first about to be sent for the job), so that the next run
// sends it as a new job. Requeue refuses an instance whose job is not
// terminal, or not in the input, before writing anything. It returns how
// many jobs it made pending.
func (s *Store) Requeue(ctx context.Context, instanceIDs []string) (int, error) {
	s.mu.Lock()
	jobs := make([]store.Job, 0, len(instanceIDs))
	for _, id := range instanceIDs {
		i, ok := s.tab.find(id)
		if !ok {
			s.mu.Unlock()
			return 0, fmt.Errorf("requeue %s: %w", id, store.ErrNotFound)
		}
		if !s.tab.status(i).Terminal() || s.claimed[i] {
			s.mu.Unlock()
			return 0, fmt.Errorf("requeue %s: job is %s, not finished", id, s.tab.status(i))
		}
		jobs = append(jobs, requeued(s.tab.get(i)))
	}
	s.mu.Unlock()
	for k := range jobs {
		if err := s.Save(ctx, &jobs[k]); err != nil {
			return k, fmt.Errorf("requeue: %w", err)
		}
		s.mu.Lock()
		i, _ := s.tab.find(jobs[k].InstanceID)
		s.reopen(i)
		s.mu.Unlock()
	}
	return len(jobs), nil
}

// requeued is j made pending for a new attempt.
func requeued(j store.Job) store.Job {
	j.Status = store.StatusPending
	j.RequestID, j.PrevRequestID, j.ErrorCode, j.ErrorMessage = "", "", "", ""
	j.Attempts = 0
	j.HookPhase = store.HookNone
	j.SubmittedAt, j.FinishedAt = time.Time{}, time.Time{}
	return j
}
