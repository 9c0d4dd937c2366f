package csv

import (
	"fmt"
	"iter"
	"os"
	"time"

	"github.com/batchreset/batchreset/store"
)

// ReadState reads the state file at statePath of a run over jobs, the
// input in order, without locking or changing it: a run may hold the file
// and append to it meanwhile (a line it is writing is not read). It returns
// each job as the journal records it, in input order, and when the run
// began. runID is as for Open; a state file of another run is ErrOtherRun.
func ReadState(statePath string, jobs []store.Job, runID string) ([]store.Job, time.Time, error) {
	b := &builder{t: newTable(len(jobs))}
	for i := range jobs {
		if err := b.add(&jobs[i]); err != nil {
			return nil, time.Time{}, fmt.Errorf("read state: %w", err)
		}
	}
	tab, err := b.finish()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read state: %w", err)
	}
	s, err := readTable(statePath, tab, runID)
	if err != nil {
		return nil, time.Time{}, err
	}
	return s.Jobs(), s.started, nil
}

// readTable replays the journal at statePath over tab without locking it,
// into a Store that only reads.
func readTable(statePath string, tab *table, runID string) (*Store, error) {
	f, err := os.Open(statePath)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	s := &Store{path: statePath, f: f, tab: tab}
	if _, _, err := s.replay(runID); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return s, nil
}

// ReadInputState is ReadState for an input read with ReadInput, which it
// takes over: it returns an iterator over each job as the journal records
// it, in input order, holding the run as compactly as a Store does, and
// when the run began.
func ReadInputState(statePath string, in *Input) (iter.Seq[store.Job], time.Time, error) {
	tab := in.tab
	in.tab = nil
	s, err := readTable(statePath, tab, in.runID)
	if err != nil {
		return nil, time.Time{}, err
	}
	return s.All(), s.started, nil
}
