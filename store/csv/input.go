package csv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"iter"
	"os"
	"strings"

	"github.com/batchreset/batchreset/store"
)

// Input is a jobs CSV file read into memory compactly, as a Store holds it,
// with the run ID of its jobs (see RunID). Read one with ReadInput and
// open its journal with OpenInput, which takes it over.
type Input struct {
	tab   *table
	runID string
	// digest is the SHA-256 of the file's bytes, and size their count.
	digest string
	size   int64
}

// ReadInput reads the jobs CSV file at path as ReadJobs does, each job
// pending with its line number as ID, into an Input that holds a million
// jobs in some 80 MB rather than the 300 MB of a []store.Job. If anything
// in the file is wrong it returns an Errors listing the problems.
func ReadInput(path string, opts ReadOptions) (*Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	defer f.Close()
	n := 0
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if n, err = countRows(f); err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
	}
	b := &builder{t: newTable(n)}
	var fp fingerprint
	raw := &countingHash{h: sha256.New()}
	r := NewReader(io.TeeReader(f, raw), path, opts)
	for {
		j, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := b.add(&j); err != nil {
			return nil, fmt.Errorf("read jobs %s: %w", path, err)
		}
		fp.add(&j)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	tab, err := b.finish()
	if err != nil {
		return nil, fmt.Errorf("read jobs %s: %w", path, err)
	}
	return &Input{tab: tab, runID: fp.sum(), digest: hex.EncodeToString(raw.h.Sum(nil)), size: raw.n}, nil
}

// Digest returns the SHA-256 (hex) and size of the file's bytes as read.
func (in *Input) Digest() (string, int64) { return in.digest, in.size }

// FileDigest returns the SHA-256 (hex) and size of the file at path, as
// Input.Digest gives them.
func FileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// Len returns how many jobs the input has.
func (in *Input) Len() int { return in.tab.len() }

// RunID returns the input's run ID, computed from what the jobs ask for
// (instance, blueprint, region and login settings, in order), so that a
// state file is only resumed with the input that started it. A job without
// login settings hashes as before they existed.
func (in *Input) RunID() string { return in.runID }

// All returns an iterator over the input's jobs, in order.
func (in *Input) All() iter.Seq[store.Job] {
	return func(yield func(store.Job) bool) {
		for i := range in.tab.len() {
			if !yield(in.tab.get(i)) {
				return
			}
		}
	}
}

// Jobs returns the input's jobs, in order.
func (in *Input) Jobs() []store.Job {
	jobs := make([]store.Job, in.tab.len())
	for i := range jobs {
		jobs[i] = in.tab.get(i)
	}
	return jobs
}

// Count counts the input's jobs, all of them unfinished.
func (in *Input) Count() store.Count { return in.tab.count() }

// OpenInput opens or creates the state file at statePath for a run over the
// jobs of in, which the Store takes over (in must not be used afterwards),
// and replays the journal it holds. A state file written for another input
// (another RunID) is refused with ErrOtherRun, so two runs never mix. A
// torn last line, left by a crash in the middle of a write, is dropped; any
// other damage is an error naming the file and line. If another Store holds
// the file, in this process or another, OpenInput returns store.ErrLocked.
func OpenInput(statePath string, in *Input) (*Store, error) {
	tab := in.tab
	in.tab = nil
	return openTable(statePath, tab, in.runID)
}

// fingerprint computes a run ID (see Input.RunID) one job at a time.
type fingerprint struct {
	h hash.Hash
}

func (f *fingerprint) add(j *store.Job) {
	if f.h == nil {
		f.h = sha256.New()
	}
	h := f.h
	io.WriteString(h, j.InstanceID)
	h.Write([]byte{0})
	io.WriteString(h, j.BlueprintID)
	h.Write([]byte{0})
	io.WriteString(h, j.Region)
	if len(j.KeyIDs) > 0 || j.AutoGeneratePassword {
		fmt.Fprintf(h, "\x00%s\x00%t", strings.Join(j.KeyIDs, store.KeyIDSeparator), j.AutoGeneratePassword)
	}
	if j.Account != "" {
		// After the login settings' place, which is empty without them:
		// a run without accounts keeps the fingerprint it had.
		fmt.Fprintf(h, "\x00account=%s", j.Account)
	}
	h.Write([]byte{'\n'})
}

func (f *fingerprint) sum() string {
	if f.h == nil {
		f.h = sha256.New()
	}
	return "sha256:" + hex.EncodeToString(f.h.Sum(nil))
}
