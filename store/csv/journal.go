package csv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/batchreset/batchreset/store"
)

// The state journal is a file of JSON lines. The first is a header,
//
//	{"batchreset_state":2,"run_id":"sha256:…","started":"…"}
//
// and each further line is a record of one Save. Lines are only ever
// appended, and a line is durable once the Save that wrote it has returned;
// compaction replaces the whole file at once. Version 2 records say what
// changed (see journalDelta); version 1 records, still read, are the whole
// job as saved (record), the last one per instance winning.
const (
	journalVersion = journalDelta
	// maxJournalLine caps one journal line; a record is well under 1 KiB
	// unless the cloud sends a very long error message.
	maxJournalLine = 16 << 20
)

// headerPrefix is how every journal header starts.
var headerPrefix = []byte(`{"batchreset_state":`)

// ErrOtherRun reports a state file left by a run over a different input.
var ErrOtherRun = errors.New("state file belongs to another run")

type journalHeader struct {
	Version *int   `json:"batchreset_state"`
	RunID   string `json:"run_id"`
	// Started is when the run began (RFC 3339), for the host registry's
	// "reset by another run during this one"; absent in older journals.
	Started string `json:"started,omitempty"`
}

// record is a store.Job as one journal line. Times are RFC 3339 with
// nanoseconds in UTC, "" when zero.
type record struct {
	ID          int64  `json:"id"`
	Run         string `json:"run"`
	InstanceID  string `json:"instance_id"`
	BlueprintID string `json:"blueprint_id"`
	Region      string `json:"region"`
	// KeyIDs are ';'-separated; absent in records of jobs without them,
	// which parseFast decodes.
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

// Fingerprint returns a run ID for Open computed from what the jobs ask for
// (instance, blueprint, region and login settings, in order), so that a
// state file is only resumed with the input that started it. A job without
// login settings hashes as before they existed.
func Fingerprint(jobs []store.Job) string {
	var fp fingerprint
	for i := range jobs {
		fp.add(&jobs[i])
	}
	return fp.sum()
}

func encodeHeader(runID string, started time.Time) []byte {
	v := journalVersion
	b, err := json.Marshal(journalHeader{Version: &v, RunID: runID, Started: formatNano(started)})
	if err != nil {
		panic(err) // a struct of an int and a string always encodes
	}
	return append(b, '\n')
}

// decodeRecord parses one journal line (without its line break).
func decodeRecord(line []byte) (store.Job, error) {
	var r record
	if !r.parseFast(line) {
		// Something parseFast does not handle, or a damaged line:
		// encoding/json decides, and explains what is wrong.
		r = record{}
		if err := decodeJSON(line, &r); err != nil {
			return store.Job{}, err
		}
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

// replay reads the journal from the start of s.f and applies its records to
// s.tab. It returns the offset where the valid journal ends (before a torn
// last line, or 0 if even the header is missing or torn) and the journal's
// version.
func (s *Store) replay(runID string) (end int64, version int, err error) {
	br := bufio.NewReaderSize(s.f, 256<<10)
	var buf []byte
	for n := 1; ; n++ {
		line, size, tooLong, err := readJournalLine(br, buf[:0])
		buf = line
		if err == io.EOF {
			// size > 0 is a torn line, a crash mid-write: no Save that
			// wrote it returned, so it is dropped. A torn first line must
			// look like the start of a header, lest Open wipe a file that
			// was never a journal.
			if n == 1 && size > 0 && !bytes.HasPrefix(line, headerPrefix) && !bytes.HasPrefix(headerPrefix, line) {
				return 0, 0, &RowError{Path: s.path, Line: n, Err: errors.New("not a batchreset state file")}
			}
			return end, version, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read state %s: %w", s.path, err)
		}
		if tooLong {
			return 0, 0, &RowError{Path: s.path, Line: n, Err: fmt.Errorf("corrupt: line over %d bytes", maxJournalLine)}
		}
		line = line[:len(line)-1] // the line break
		switch {
		case n == 1:
			if s.started, version, err = checkHeader(line, runID); err != nil {
				return 0, 0, &RowError{Path: s.path, Line: n, Err: err}
			}
		case version == 1:
			if err := s.replayRecord(line); err != nil {
				return 0, 0, &RowError{Path: s.path, Line: n, Err: err}
			}
		default:
			if err := s.replayDelta(line); err != nil {
				return 0, 0, &RowError{Path: s.path, Line: n, Err: err}
			}
		}
		if n > 1 {
			s.records++
		}
		end += size
	}
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
	if err := checkSameJob(&in, &j); err != nil {
		return fmt.Errorf("record for %s: %w", j.InstanceID, err)
	}
	j.ID = in.ID
	return s.tab.set(i, &j)
}

// replayDelta applies a version-2 record: what changed.
func (s *Store) replayDelta(line []byte) error {
	d, err := decodeDelta(line)
	if err != nil {
		return fmt.Errorf("corrupt record: %w", err)
	}
	if d.n < 0 || d.n >= int64(s.tab.len()) {
		return fmt.Errorf("record for job %d, which is not in the input of %d", d.n, s.tab.len())
	}
	i := int(d.n)
	j := s.tab.get(i)
	if err := d.apply(&j, s.tab.input(i), s.started); err != nil {
		return fmt.Errorf("corrupt record: %w", err)
	}
	return s.tab.set(i, &j)
}

// checkSameJob reports a record j that does not describe input job in: what
// a job resets (instance, blueprint, region, login settings) is fixed by
// the input.
func checkSameJob(in, j *store.Job) error {
	if j.BlueprintID != in.BlueprintID || j.Region != in.Region {
		return fmt.Errorf("blueprint %q in region %q, but the input has %q in %q",
			j.BlueprintID, j.Region, in.BlueprintID, in.Region)
	}
	if !slices.Equal(j.KeyIDs, in.KeyIDs) || j.AutoGeneratePassword != in.AutoGeneratePassword {
		return fmt.Errorf("login settings (key pairs %q, generated password %t), but the input has %q, %t",
			j.KeyIDs, j.AutoGeneratePassword, in.KeyIDs, in.AutoGeneratePassword)
	}
	return nil
}

func checkHeader(line []byte, runID string) (started time.Time, version int, err error) {
	var h journalHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Version == nil {
		return time.Time{}, 0, errors.New("not a batchreset state file")
	}
	if h.Started != "" {
		started, _ = time.Parse(time.RFC3339Nano, h.Started)
	}
	if *h.Version != 1 && *h.Version != journalVersion {
		return time.Time{}, 0, fmt.Errorf("state format version %d, want 1 or %d", *h.Version, journalVersion)
	}
	if *h.Version == journalVersion && started.IsZero() {
		return time.Time{}, 0, errors.New("corrupt header: no started time")
	}
	if h.RunID != runID {
		return time.Time{}, 0, fmt.Errorf("%w (run_id %q, this input is %q): finish that run or move the file away", ErrOtherRun, h.RunID, runID)
	}
	return started, *h.Version, nil
}

// readJournalLine appends the next line of br, with its line break, to buf.
// It returns io.EOF with the bytes of a last line that has no line break
// (size 0 at the very end). A line over maxJournalLine is consumed but
// reported as tooLong rather than kept.
func readJournalLine(br *bufio.Reader, buf []byte) (line []byte, size int64, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		size += int64(len(chunk))
		if len(buf)+len(chunk) <= maxJournalLine {
			buf = append(buf, chunk...)
		} else {
			tooLong = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return buf, size, tooLong, err
	}
}
