package csv

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/batchreset/batchreset/store"
)

// RaceEnabled lets the external tests size themselves to the race detector.
const RaceEnabled = raceEnabled

// Fingerprint returns the run ID that an Input of jobs, in order, has (see
// Input.RunID), for tests that build their jobs in memory.
func Fingerprint(jobs []store.Job) string {
	var fp fingerprint
	for i := range jobs {
		fp.add(&jobs[i])
	}
	return fp.sum()
}

// Open is OpenInput for jobs built in memory, under runID.
func Open(statePath string, jobs []store.Job, runID string) (*Store, error) {
	if runID == "" {
		return nil, errors.New("open state: empty run ID")
	}
	tab, err := buildTable(jobs)
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	return openTable(statePath, tab, runID)
}

// ReadState is ReadInputState for jobs built in memory, under runID: it
// returns the jobs as the journal records them, in input order.
func ReadState(statePath string, jobs []store.Job, runID string) ([]store.Job, time.Time, error) {
	tab, err := buildTable(jobs)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read state: %w", err)
	}
	s, err := readTable(statePath, tab, runID)
	if err != nil {
		return nil, time.Time{}, err
	}
	return s.Jobs(), s.started, nil
}

func buildTable(jobs []store.Job) (*table, error) {
	b := &builder{t: newTable(len(jobs))}
	for i := range jobs {
		if err := b.add(&jobs[i]); err != nil {
			return nil, err
		}
	}
	return b.finish()
}

// rowBytes is the size of the table's fixed-size rows and index, which
// live outside the garbage-collected heap where the system allows (see
// offHeap).
func (t *table) rowBytes() int {
	return cap(t.in)*int(unsafe.Sizeof(inputRow{})) + cap(t.st)*int(unsafe.Sizeof(stateRow{})) + (cap(t.slots)+cap(t.same))*4
}
