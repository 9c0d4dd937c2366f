package csv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

func testJobs(n int) []store.Job {
	jobs := make([]store.Job, n)
	for i := range jobs {
		jobs[i] = store.Job{
			ID:         int64(i + 2),
			InstanceID: fmt.Sprintf("lhins-%08x", i),
			Region:     "ap-guangzhou",
			Status:     store.StatusPending,
		}
	}
	return jobs
}

func openTest(t testing.TB, jobs []store.Job) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "results.csv.state"), jobs, Fingerprint(jobs))
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// gatedWriter holds every Sync until the test releases it, and can fail it.
type gatedWriter struct {
	w       syncWriter
	synced  chan struct{} // one value per Sync call, sent before it waits
	release chan struct{}
	err     error // returned by Sync once released
	writes  atomic.Int64
}

func newGatedWriter(w syncWriter) *gatedWriter {
	return &gatedWriter{w: w, synced: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.writes.Add(1)
	return g.w.Write(p)
}

func (g *gatedWriter) Sync() error {
	g.synced <- struct{}{}
	<-g.release
	if g.err != nil {
		return g.err
	}
	return g.w.Sync()
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestGroupCommitBatches checks that Saves queued while an fsync runs share
// the next write and fsync.
func TestGroupCommitBatches(t *testing.T) {
	t.Parallel()
	jobs := testJobs(64)
	s := openTest(t, jobs)
	g := newGatedWriter(s.f)
	s.w = g // before any Save, which hands it to the writer goroutine

	first := make(chan error, 1)
	go func() {
		j := jobs[0]
		j.Status = store.StatusSubmitting
		first <- s.Save(t.Context(), &j)
	}()
	waitFor(t, g.synced, "the first fsync")

	var batches []*batch
	for i := 1; i < len(jobs); i++ {
		j := jobs[i]
		j.Status = store.StatusSubmitting
		b, err := s.enqueue(&j)
		if err != nil {
			t.Fatalf("enqueue(%s) = %v", j.InstanceID, err)
		}
		batches = append(batches, b)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatalf("first Save() = %v", err)
	}
	for i, b := range batches {
		waitFor(t, b.done, "the second fsync")
		if b.err != nil {
			t.Fatalf("queued Save %d: %v", i, b.err)
		}
		if b != batches[0] {
			t.Fatalf("queued Save %d went into another batch", i)
		}
	}
	if got := s.syncs.Load(); got != 2 {
		t.Errorf("%d fsyncs for 64 Saves, want 2", got)
	}
	if got := g.writes.Load(); got != 2 {
		t.Errorf("%d writes for 64 Saves, want 2", got)
	}
	for i, j := range s.Jobs() {
		if j.Status != store.StatusSubmitting {
			t.Errorf("job %d: status %s after its Save returned, want submitting", i, j.Status)
		}
	}
}

// TestJournalFailure checks that a failed fsync reaches every waiting Save
// and stops the Store.
func TestJournalFailure(t *testing.T) {
	t.Parallel()
	jobs := testJobs(4)
	s := openTest(t, jobs)
	g := newGatedWriter(s.f)
	g.err = errors.New("disk on fire")
	s.w = g

	first := make(chan error, 1)
	go func() {
		j := jobs[0]
		j.Status = store.StatusSubmitting
		first <- s.Save(t.Context(), &j)
	}()
	waitFor(t, g.synced, "the first fsync")
	j := jobs[1]
	j.Status = store.StatusSubmitting
	queued, err := s.enqueue(&j)
	if err != nil {
		t.Fatalf("enqueue() = %v", err)
	}
	close(g.release)

	if err := <-first; !errors.Is(err, g.err) {
		t.Errorf("Save() during a failed fsync = %v, want %v", err, g.err)
	}
	waitFor(t, queued.done, "the queued Save")
	if !errors.Is(queued.err, g.err) {
		t.Errorf("Save() queued behind a failed fsync = %v, want %v", queued.err, g.err)
	}
	j = jobs[2]
	j.Status = store.StatusSubmitting
	if err := s.Save(t.Context(), &j); !errors.Is(err, g.err) {
		t.Errorf("Save() after a failed fsync = %v, want %v", err, g.err)
	}
	if _, _, err := s.Claim(t.Context(), 1); !errors.Is(err, g.err) {
		t.Errorf("Claim() after a failed fsync = %v, want %v", err, g.err)
	}
	if got := g.writes.Load(); got != 1 {
		t.Errorf("%d writes, want 1: nothing is written after a failure", got)
	}
	for i, j := range s.Jobs() {
		if j.Status != store.StatusPending {
			t.Errorf("job %d: status %s, want pending: a Save that failed changes nothing", i, j.Status)
		}
	}
}

// writeJournal writes a state file for jobs as a run of the previous
// journal format (version 1) that reset every one of them would leave:
// three whole records a job.
func writeJournal(t testing.TB, path string, jobs []store.Job) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, `{"batchreset_state":1,"run_id":%q,"started":%q}`+"\n", Fingerprint(jobs), formatNano(time.Now()))
	now := time.Now()
	for i := range jobs {
		j := jobs[i]
		j.Status, j.Attempts, j.IntentAt = store.StatusSubmitting, 1, now
		for _, st := range []store.Status{store.StatusSubmitting, store.StatusSubmitted, store.StatusSucceeded} {
			j.Status = st
			switch st {
			case store.StatusSubmitted:
				j.RequestID, j.SubmittedAt = fmt.Sprintf("6f1c0a9e-1b7d-4c1e-9a3f-%012d", i), now
			case store.StatusSucceeded:
				j.FinishedAt = now
			}
			line, err := encodeRecord(&j)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(line)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestMemory100kJobs runs what batchreset does with a finished run of
// 100,000 jobs (read the input, replay a version-1 journal of three records
// a job and compact it, write the results) in a process of its own, and
// checks its peak memory.
func TestMemory100kJobs(t *testing.T) {
	if dir := os.Getenv("BATCHRESET_TEST_MEMORY_DIR"); dir != "" {
		memoryChild(t, dir)
		return
	}
	t.Parallel()
	if testing.Short() || raceEnabled || runtime.GOOS != "linux" {
		t.Skip("builds a 100,000-job run; reads Linux's VmHWM; the race detector multiplies memory use")
	}

	const n = 100_000
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "jobs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "instance_id,blueprint_id,region")
	for i := range n {
		fmt.Fprintf(w, "lhins-%08x,lhbp-0a1b2c3d,ap-guangzhou\n", i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	jobs, err := ReadJobs(filepath.Join(dir, "jobs.csv"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeJournal(t, filepath.Join(dir, "results.csv.state"), jobs)

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMemory100kJobs$", "-test.v")
	cmd.Env = append(os.Environ(), "BATCHRESET_TEST_MEMORY_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	var peak, live int64
	if i := bytes.Index(out, []byte("peak_rss_kib=")); i < 0 {
		t.Fatalf("child process did not report its memory:\n%s", out)
	} else {
		fmt.Sscanf(string(out[i:]), "peak_rss_kib=%d live_kib=%d", &peak, &live)
	}
	t.Logf("100,000 jobs: peak RSS %d MiB, live heap %d MiB", peak>>10, live>>10)
	if peak > 60<<10 {
		t.Errorf("100,000 jobs took a peak RSS of %d MiB, want under 60", peak>>10)
	}
}

// memoryChild is TestMemory100kJobs in its own process.
func memoryChild(t *testing.T, dir string) {
	in, err := ReadInput(filepath.Join(dir, "jobs.csv"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := in.Len()
	s, err := OpenInput(filepath.Join(dir, "results.csv.state"), in)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Totals()[store.StatusSucceeded]; got != n {
		t.Fatalf("%d jobs succeeded after replay, want %d", got, n)
	}
	if err := WriteResultsFileSeq(filepath.Join(dir, "results.csv"), s.All(), false); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no peak RSS on this system: %v", err)
	}
	var peak int64
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &peak)
		}
	}
	fmt.Printf("peak_rss_kib=%d live_kib=%d\n", peak, ms.HeapAlloc>>10)
}

// BenchmarkSave measures Saves from 64 goroutines at once, each durable on
// return; group commit is what makes fsyncs fewer than saves.
func BenchmarkSave(b *testing.B) {
	jobs := testJobs(1024)
	s := openTest(b, jobs)
	var next atomic.Int64
	start := s.syncs.Load()
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			j := jobs[next.Add(1)%int64(len(jobs))]
			j.Status = store.StatusSubmitting
			j.IntentAt = time.Now()
			if err := s.Save(ctx, &j); err != nil {
				b.Error(err)
				return
			}
		}
	})
	syncs := s.syncs.Load() - start
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
	b.ReportMetric(float64(syncs), "fsyncs")
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "saves/fsync")
}
