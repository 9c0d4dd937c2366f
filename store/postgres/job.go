package postgres

import (
	"strings"
	"time"

	"github.com/batchreset/batchreset/store"
)

// jobColumns lists the columns scanned into jobRow, in any order.
const jobColumns = `id, run, instance_id, blueprint_id, region, account, key_ids, auto_generate_password, status,
	request_id, prev_request_id, prev_blueprint_id, error_code, error_message, attempts, hook_phase,
	not_before, intent_at, submitted_at, finished_at, lease_token`

// jobRow is one jobs row as scanned by pgx.RowToStructByName (names match
// columns ignoring case and underscores).
type jobRow struct {
	ID          int64
	Run         string
	InstanceID  string
	BlueprintID string
	Region      string
	Account     string
	// KeyIDs are ';'-separated, as in the jobs CSV.
	KeyIDs               string
	AutoGeneratePassword bool
	Status               store.Status
	RequestID            string
	PrevRequestID        string
	PrevBlueprintID      string
	ErrorCode            string
	ErrorMessage         string
	Attempts             int
	HookPhase            store.HookPhase
	NotBefore            time.Time
	IntentAt             *time.Time
	SubmittedAt          *time.Time
	FinishedAt           *time.Time
	LeaseToken           int64
}

func (r jobRow) job() store.Job {
	return store.Job{
		ID:                   r.ID,
		Run:                  r.Run,
		InstanceID:           r.InstanceID,
		BlueprintID:          r.BlueprintID,
		Region:               r.Region,
		Account:              r.Account,
		KeyIDs:               splitKeyIDs(r.KeyIDs),
		AutoGeneratePassword: r.AutoGeneratePassword,
		Status:               r.Status,
		RequestID:            r.RequestID,
		PrevRequestID:        r.PrevRequestID,
		PrevBlueprintID:      r.PrevBlueprintID,
		ErrorCode:            r.ErrorCode,
		ErrorMessage:         r.ErrorMessage,
		Attempts:             r.Attempts,
		HookPhase:            r.HookPhase,
		NotBefore:            r.NotBefore,
		IntentAt:             deref(r.IntentAt),
		SubmittedAt:          deref(r.SubmittedAt),
		FinishedAt:           deref(r.FinishedAt),
		Fence:                r.LeaseToken,
	}
}

// splitKeyIDs reads the key_ids column; ” is none.
func splitKeyIDs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, store.KeyIDSeparator)
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// nullTime maps the zero time to SQL NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// micros rounds d up to whole microseconds, the resolution of timestamptz, so
// that an interval stored in the database is never shorter than asked.
func micros(d time.Duration) int64 {
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}
