package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/batchreset/batchreset/runner"
)

// rolloutRecord is what a CSV run records of its rollout beside its
// journal (OUT.rollout), so that status shows the run's own failure budget
// rather than its own flag's default: the Postgres store keeps the same in
// run_rollouts. Every run, rerun and retry of the jobs file rewrites it as
// it begins, since the budget is each run's. A journal without one was
// written before runs recorded it.
type rolloutRecord struct {
	Version int `json:"batchreset_rollout"`
	// MaxFailures is --max-failures as given (none, N or P%), and Budget
	// what it resolved to for the run's jobs, -1 for none.
	MaxFailures string `json:"max_failures"`
	Budget      int    `json:"budget"`
	Canary      int    `json:"canary,omitempty"`
	Waves       []int  `json:"waves,omitempty"`
}

const rolloutRecordVersion = 1

func rolloutRecordPath(out string) string { return out + ".rollout" }

// recordRollout records ro, resolved from maxFailures, as the rollout of
// the CSV run whose results file is out, whole or not at all.
func recordRollout(out, maxFailures string, ro *runner.Rollout) error {
	b, err := json.Marshal(rolloutRecord{Version: rolloutRecordVersion, MaxFailures: maxFailures, Budget: ro.MaxFailures, Canary: ro.Canary, Waves: ro.Waves})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".rollout-*")
	if err != nil {
		return fmt.Errorf("record the rollout: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), rolloutRecordPath(out))
	}
	if err != nil {
		os.Remove(tmp.Name())
		// An earlier run's record must not stand for this run's.
		os.Remove(rolloutRecordPath(out))
		return fmt.Errorf("record the rollout: %w", err)
	}
	return nil
}

// readRolloutRecord reads the rollout the CSV run whose results file is out
// recorded; false when it recorded none.
func readRolloutRecord(out string) (rolloutRecord, bool, error) {
	b, err := os.ReadFile(rolloutRecordPath(out))
	if errors.Is(err, os.ErrNotExist) {
		return rolloutRecord{}, false, nil
	}
	if err != nil {
		return rolloutRecord{}, false, err
	}
	var r rolloutRecord
	if err := json.Unmarshal(b, &r); err != nil || r.Version != rolloutRecordVersion {
		return rolloutRecord{}, false, fmt.Errorf("%s: not a rollout record of this version", rolloutRecordPath(out))
	}
	return r, true, nil
}
