package csv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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

func encodeHeader(runID string, started time.Time) []byte {
	v := journalVersion
	b, err := json.Marshal(journalHeader{Version: &v, RunID: runID, Started: formatNano(started)})
	if err != nil {
		panic(err) // a struct of an int and a string always encodes
	}
	return append(b, '\n')
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
			// look like the start of a header, lest OpenInput wipe a file that
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
// a job resets (instance, blueprint, region, account, login settings) is fixed by
// the input.
func checkSameJob(in, j *store.Job) error {
	if j.BlueprintID != in.BlueprintID || j.Region != in.Region {
		return fmt.Errorf("blueprint %q in region %q, but the input has %q in %q",
			j.BlueprintID, j.Region, in.BlueprintID, in.Region)
	}
	if j.Account != in.Account {
		return fmt.Errorf("account %q, but the input has %q", j.Account, in.Account)
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
