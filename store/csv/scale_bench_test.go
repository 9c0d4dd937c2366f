package csv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// BenchmarkFinishedRun is the store's half of a CSV run of N jobs, without
// the runner or the API: read the jobs file, open a new journal, save each
// job three times as a run does (submitting, submitted, succeeded; 64 at
// once), close (which compacts the journal), then what a cron tick does on
// the finished run (read the jobs file, replay the journal, count, write
// the results). It reports
//
//   - heap-MB: the live heap of the Store with every job finished, the
//     input's jobs included;
//   - rows-MB: the table's fixed-size rows and index, outside the heap;
//   - journal-B/job: the compacted journal's size per job;
//   - live-journal-B/job: the journal's size per job before compaction;
//   - reopen-s: the cron tick's seconds;
//   - peak-rss-MB: the process's peak resident set over the whole run.
func BenchmarkFinishedRun(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var live, rows, journal, liveJournal, reopen, rss float64
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				jobsPath := filepath.Join(dir, "jobs.csv")
				writeJobsFile(b, jobsPath, n)
				statePath := filepath.Join(dir, "results.csv.state")
				base := liveHeap()
				resetPeakRSS()
				b.StartTimer()

				in, err := ReadInput(jobsPath, ReadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				s, err := OpenInput(statePath, in)
				if err != nil {
					b.Fatal(err)
				}
				saveAll(b, s, n)
				b.StopTimer()
				live += float64(liveHeap()-base) / (1 << 20)
				rows += float64(s.tab.rowBytes()) / (1 << 20)
				if st, err := os.Stat(statePath); err == nil {
					liveJournal += float64(st.Size()) / float64(n)
				}
				b.StartTimer()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				s = nil
				st, err := os.Stat(statePath)
				if err != nil {
					b.Fatal(err)
				}
				journal += float64(st.Size()) / float64(n)

				start := time.Now()
				in, err = ReadInput(jobsPath, ReadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				s, err = OpenInput(statePath, in)
				if err != nil {
					b.Fatal(err)
				}
				if sum := s.Count(); sum.Unfinished != 0 {
					b.Fatalf("Count() = %+v after the run, want nothing unfinished", sum)
				}
				if err := WriteResultsFileSeq(filepath.Join(dir, "results.csv"), s.All(), false); err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				reopen += time.Since(start).Seconds()
				b.StopTimer()
				rss += float64(peakRSS()) / 1024
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(live/runs, "heap-MB")
			b.ReportMetric(rows/runs, "rows-MB")
			b.ReportMetric(journal/runs, "journal-B/job")
			b.ReportMetric(liveJournal/runs, "live-journal-B/job")
			b.ReportMetric(reopen/runs, "reopen-s")
			b.ReportMetric(rss/runs, "peak-rss-MB")
		})
	}
}

// writeJobsFile writes a jobs CSV of n instances in two regions.
func writeJobsFile(b *testing.B, path string, n int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "instance_id,blueprint_id,region")
	for i := range n {
		fmt.Fprintf(w, "lhins-%08x,lhbp-0a1b2c3d,%s\n", i, []string{"ap-guangzhou", "ap-singapore"}[i%2])
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// saveAll saves every job of s three times, from 64 goroutines.
func saveAll(b *testing.B, s *Store, n int) {
	b.Helper()
	var wg sync.WaitGroup
	next := make(chan int, 256)
	go func() {
		defer close(next)
		for i := range n {
			next <- i
		}
	}()
	ctx := context.Background()
	for range 64 {
		wg.Go(func() {
			for i := range next {
				s.mu.Lock()
				j := s.tab.get(i)
				s.mu.Unlock()
				j.PrevRequestID = fmt.Sprintf("9e3b0a2c-5d6e-4f70-8a9b-%012d", i)
				j.Status, j.Attempts, j.IntentAt = store.StatusSubmitting, 1, time.Now()
				for _, st := range []store.Status{store.StatusSubmitting, store.StatusSubmitted, store.StatusSucceeded} {
					j.Status = st
					switch st {
					case store.StatusSubmitted:
						j.RequestID, j.SubmittedAt = fmt.Sprintf("6f1c0a9e-1b7d-4c1e-9a3f-%012d", i), time.Now()
					case store.StatusSucceeded:
						j.FinishedAt = time.Now()
					}
					if err := s.Save(ctx, &j); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

// resetPeakRSS resets the process's peak resident set (Linux 4.0+).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the process's peak resident set in KiB, 0 if unknown.
func peakRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, _ := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
			return kb
		}
	}
	return 0
}
