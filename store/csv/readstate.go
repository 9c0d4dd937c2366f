package csv

import (
	"fmt"
	"iter"
	"os"
	"time"

	"github.com/batchreset/batchreset/store"
)

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

// ReadInputState reads the state file at statePath of the run over in, an
// input read with ReadInput, which it takes over, without locking or
// changing the file: a run may hold it and append to it meanwhile (a line
// it is writing is not read). It returns an iterator over each job as the
// journal records it, in input order, holding the run as compactly as a
// Store does, and when the run began. A state file of another run is
// ErrOtherRun.
func ReadInputState(statePath string, in *Input) (iter.Seq[store.Job], time.Time, error) {
	tab := in.tab
	in.tab = nil
	s, err := readTable(statePath, tab, in.runID)
	if err != nil {
		return nil, time.Time{}, err
	}
	return s.All(), s.started, nil
}
