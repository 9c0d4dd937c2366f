package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"github.com/batchreset/batchreset/runner"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// doneMark is what a CSV run leaves beside its journal when it ends with
// every job finished (OUT.done): the tally its summary printed, and the
// input and the journal as they were then. A later run of the same input
// whose journal has not changed since has nothing to do, and says so from
// the mark, without reading the input into memory or replaying the journal:
// a cron tick on a finished fleet. Any command that opens the journal to
// write removes the mark first, and a mark that does not match both files
// exactly is ignored.
type doneMark struct {
	Version int       `json:"batchreset_done"`
	Input   fileStamp `json:"input"`
	// Region is the region the jobs file's rows without one took.
	Region  string    `json:"region"`
	Journal fileStamp `json:"journal"`
	Tally   runTally  `json:"tally"`
}

// fileStamp identifies a file's content: the input by its bytes' SHA-256,
// the journal (rewritten, never edited in place, by a later command) by
// its size and modification time.
type fileStamp struct {
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256,omitempty"`
	ModTime int64  `json:"mtime_ns,omitempty"`
}

const doneVersion = 1

func donePath(out string) string { return out + ".done" }

// journalStamp stamps the journal at path.
func journalStamp(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{Size: st.Size(), ModTime: st.ModTime().UnixNano()}, nil
}

// writeDone leaves the mark of s's finished run, tallied t; the journal
// must be closed (compacted) already. A mark that cannot be written is
// only a slower next run.
func (s *csvSource) writeDone(t runTally) {
	j, err := journalStamp(s.state)
	if err != nil {
		return
	}
	b, err := json.Marshal(doneMark{Version: doneVersion, Input: fileStamp{Size: s.size, SHA256: s.digest}, Region: s.region, Journal: j, Tally: t})
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.out), ".done-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), donePath(s.out)) != nil {
		os.Remove(tmp.Name())
	}
}

// finishedRun returns the tally of the CSV run of o if its done mark
// matches the jobs file, its default region and the journal as they are
// now.
func finishedRun(o sourceFlags) (runTally, *csvSource, bool) {
	src := &csvSource{out: o.outPath, jobsPath: o.jobsPath, outSet: o.outPath != ""}
	if src.out == "" {
		src.out = defaultResults(o.jobsPath)
	}
	src.state = src.out + ".state"
	b, err := os.ReadFile(donePath(src.out))
	if err != nil {
		return runTally{}, nil, false
	}
	var m doneMark
	if json.Unmarshal(b, &m) != nil || m.Version != doneVersion || m.Input.SHA256 == "" || m.Region != o.region {
		return runTally{}, nil, false
	}
	if j, err := journalStamp(src.state); err != nil || j != m.Journal {
		return runTally{}, nil, false
	}
	if _, err := os.Stat(src.out); err != nil {
		return runTally{}, nil, false // the results are gone: write them again
	}
	digest, size, err := csvstore.FileDigest(o.jobsPath)
	if err != nil || digest != m.Input.SHA256 || size != m.Input.Size {
		return runTally{}, nil, false
	}
	return m.Tally, src, true
}

// removeDone removes the done mark of the results at out, before a command
// may change the journal.
func removeDone(out string) error {
	if err := os.Remove(donePath(out)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// runFinished is run's answer for a CSV run its done mark shows finished:
// the summary, from the mark, and the exit code.
func (a *app) runFinished(t runTally, src *csvSource, api string) error {
	a.notef("nothing to do: every one of the %d instances has an outcome (%s)", t.Instances, src.out)
	a.printSummary(newRunSummary(t, src, api, runner.Summary{}, "", nil))
	if !t.succeeded() {
		return &exitError{code: exitFailures}
	}
	return nil
}
