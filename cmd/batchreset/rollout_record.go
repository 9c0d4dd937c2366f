package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
)

// rolloutRecord is what a CSV run records of its rollout and its hooks
// beside its journal (OUT.rollout), so that status and plan show the run's
// own settings rather than their flags' defaults: the Postgres store keeps
// the same in run_rollouts and runs. Every run, rerun and retry of the jobs
// file rewrites it as it begins, since the budget is each run's; the hooks
// are the run's for as long as its journal lasts (see csvSource.JoinHooks).
// A journal without one was written before runs recorded it; a record of
// version 1, before they recorded their hooks, --on-failure and --approve.
type rolloutRecord struct {
	Version int `json:"batchreset_rollout"`
	// MaxFailures is --max-failures as given (none, N or P%), and Budget
	// what it resolved to for the run's jobs, -1 for none.
	MaxFailures string `json:"max_failures"`
	Budget      int    `json:"budget"`
	Canary      int    `json:"canary,omitempty"`
	Waves       []int  `json:"waves,omitempty"`
	// OnFailure and Approve are --on-failure and --approve; Hooks the
	// lifecycle hooks. All three are recorded from version 2 on.
	OnFailure string             `json:"on_failure,omitempty"`
	Approve   string             `json:"approve,omitempty"`
	Hooks     store.HookSettings `json:"hooks"`
}

// rolloutRecordVersion is the version written; readRolloutRecord also reads
// version 1, whose OnFailure, Approve and Hooks are unknown.
const rolloutRecordVersion = 2

// settingsKnown reports whether r records --on-failure, --approve and the
// hooks (version 2 on).
func (r rolloutRecord) settingsKnown() bool { return r.Version >= 2 }

func rolloutRecordPath(out string) string { return out + ".rollout" }

// recordRollout records ro, resolved from maxFailures, and hooks as the
// rollout and hooks of the CSV run whose results file is out, whole or not
// at all.
func recordRollout(out, maxFailures string, ro *runner.Rollout, hooks store.HookSettings) error {
	b, err := json.Marshal(rolloutRecord{Version: rolloutRecordVersion, MaxFailures: maxFailures, Budget: ro.MaxFailures, Canary: ro.Canary, Waves: ro.Waves,
		OnFailure: string(ro.OnFailure), Approve: string(ro.Approve), Hooks: hooks})
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
	if err := json.Unmarshal(b, &r); err != nil || r.Version < 1 || r.Version > rolloutRecordVersion {
		return rolloutRecord{}, false, fmt.Errorf("%s: not a rollout record of this version", rolloutRecordPath(out))
	}
	return r, true, nil
}

// runRecord is what a run's record keeps of the settings that are the
// run's rather than a process's, for status, plan and the banner to show
// the run's own: CSV mode's OUT.rollout, Postgres's run_rollouts and runs.
type runRecord struct {
	// OnFailure and Approve are the run's --on-failure and --approve; ""
	// when its record has no rollout (a Postgres run without a canary,
	// waves or budget).
	OnFailure string             `json:"on_failure,omitempty"`
	Approve   string             `json:"approve,omitempty"`
	Hooks     store.HookSettings `json:"hooks"`
}

// csvRunRecord reads the settings the CSV run whose results file is out
// recorded; false when it recorded none (no run yet, or one from before
// runs recorded them).
func csvRunRecord(out string) (runRecord, bool, error) {
	rec, ok, err := readRolloutRecord(out)
	if err != nil || !ok || !rec.settingsKnown() {
		return runRecord{}, false, err
	}
	return runRecord{OnFailure: rec.OnFailure, Approve: rec.Approve, Hooks: rec.Hooks}, true, nil
}

// dbRunRecord reads the settings Postgres run recorded; false when no
// runner has recorded them.
func dbRunRecord(ctx context.Context, db *postgres.Store, run string) (runRecord, bool, error) {
	hooks, recorded, err := db.Hooks(ctx, run)
	if err != nil || !recorded {
		return runRecord{}, false, err
	}
	r := runRecord{Hooks: hooks}
	ro, err := db.Rollout(ctx, run)
	switch {
	case err == nil:
		r.OnFailure, r.Approve = ro.Plan.OnFailure, ro.Plan.Approve
	case !errors.Is(err, store.ErrNotFound):
		return runRecord{}, false, err
	}
	return r, true, nil
}
