package csv

import (
	"fmt"
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
	f, err := os.Open(statePath)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
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
	s := &Store{path: statePath, f: f, tab: tab}
	if _, _, err := s.replay(runID); err != nil {
		return nil, time.Time{}, fmt.Errorf("read state: %w", err)
	}
	return s.Jobs(), s.started, nil
}
