package csv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Version 1 of the journal wrote each Save as the whole job, one JSON
// record a line. This version writes version 2 (journal_v2.go), and reads
// version 1 journals left by earlier ones.

// record is a store.Job as one journal line. Times are RFC 3339 with
// nanoseconds in UTC, "" when zero.
type record struct {
	ID          int64  `json:"id"`
	Run         string `json:"run"`
	InstanceID  string `json:"instance_id"`
	BlueprintID string `json:"blueprint_id"`
	Region      string `json:"region"`
	// KeyIDs are ';'-separated; absent in records of jobs without them.
	KeyIDs               string       `json:"key_ids,omitempty"`
	AutoGeneratePassword bool         `json:"auto_generate_password,omitempty"`
	Status               store.Status `json:"status"`
	RequestID            string       `json:"request_id"`
	PrevRequestID        string       `json:"prev_request_id"`
	ErrorCode            string       `json:"error_code"`
	ErrorMessage         string       `json:"error_message"`
	Attempts             int          `json:"attempts"`
	NotBefore            string       `json:"not_before"`
	IntentAt             string       `json:"intent_at"`
	SubmittedAt          string       `json:"submitted_at"`
	FinishedAt           string       `json:"finished_at"`
	Fence                int64        `json:"fence"`
}

// decodeRecord parses one journal line (without its line break).
func decodeRecord(line []byte) (store.Job, error) {
	var r record
	if err := decodeJSON(line, &r); err != nil {
		return store.Job{}, err
	}
	return r.job()
}

// decodeJSON decodes line into r with encoding/json, strictly.
func decodeJSON(line []byte, r *record) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields() // a field we do not know: written by another version
	if err := dec.Decode(r); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the record")
	}
	return nil
}

// job checks r and returns it as a store.Job.
func (r *record) job() (store.Job, error) {
	if r.InstanceID == "" {
		return store.Job{}, errors.New("no instance_id")
	}
	if !r.Status.Valid() {
		return store.Job{}, fmt.Errorf("unknown status %q", r.Status)
	}
	j := store.Job{
		ID:                   r.ID,
		Run:                  r.Run,
		InstanceID:           r.InstanceID,
		BlueprintID:          r.BlueprintID,
		Region:               r.Region,
		AutoGeneratePassword: r.AutoGeneratePassword,
		Status:               r.Status,
		RequestID:            r.RequestID,
		PrevRequestID:        r.PrevRequestID,
		ErrorCode:            r.ErrorCode,
		ErrorMessage:         r.ErrorMessage,
		Attempts:             r.Attempts,
		Fence:                r.Fence,
	}
	if r.KeyIDs != "" {
		j.KeyIDs = strings.Split(r.KeyIDs, store.KeyIDSeparator)
	}
	var err error
	if j.NotBefore, err = parseNano("not_before", r.NotBefore); err != nil {
		return store.Job{}, err
	}
	if j.IntentAt, err = parseNano("intent_at", r.IntentAt); err != nil {
		return store.Job{}, err
	}
	if j.SubmittedAt, err = parseNano("submitted_at", r.SubmittedAt); err != nil {
		return store.Job{}, err
	}
	if j.FinishedAt, err = parseNano("finished_at", r.FinishedAt); err != nil {
		return store.Job{}, err
	}
	return j, nil
}

// parseNano parses a time written by formatNano.
func parseNano(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

func formatNano(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// replayRecord applies a version-1 record: the whole job.
func (s *Store) replayRecord(line []byte) error {
	j, err := decodeRecord(line)
	if err != nil {
		return fmt.Errorf("corrupt record: %w", err)
	}
	i, ok := s.tab.find(j.InstanceID)
	if !ok {
		return fmt.Errorf("record for %s, which is not in the input", j.InstanceID)
	}
	in := s.tab.input(i)
	j.Account = in.Account // version 1 predates accounts
	if err := checkSameJob(&in, &j); err != nil {
		return fmt.Errorf("record for %s: %w", j.InstanceID, err)
	}
	j.ID = in.ID
	return s.tab.set(i, &j)
}
