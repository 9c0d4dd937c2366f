package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// progress shows a run's progress: a live bar on a terminal, otherwise a
// log line every progressLogEvery.
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

const progressLogEvery = 10 * time.Second

func (a *app) startProgress(st *runner.Stats, ro *runner.Rollout, total int) *progress {
	p := &progress{done: make(chan struct{})}
	if total == 0 || a.quiet {
		return p
	}
	tty := isTerminal(a.stderr) && a.logFormat == "text"
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if tty {
			p.bar(a.stderr, st, ro, total)
		} else {
			p.lines(a, st, ro, total)
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}

func finishedCount(t store.Totals) int {
	n := 0
	for st, c := range t {
		if st.Terminal() {
			n += c
		}
	}
	return n
}

func (p *progress) bar(w io.Writer, st *runner.Stats, ro *runner.Rollout, total int) {
	// The bar draws no time of its own: its prediction shows before
	// anything is sent. progressETA adds one to the text once there is a
	// rate.
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		t := st.Totals()
		done := finishedCount(t)
		// Set first: Describe draws at once, and with the count of
		// before it the bar lagged its own text.
		bar.Set(done)
		desc := fmt.Sprintf("%ssent %d · in progress %d · ok %d · failed %d · unknown %d · unhealthy %d · skipped %d%s",
			waveNote(ro), st.Sent(), st.Resetting(), t[store.StatusSucceeded], t[store.StatusFailed],
			t[store.StatusUnknown], t[store.StatusUnhealthy], t[store.StatusSkipped], pausedNote(st))
		if _, eta, ok := progressETA(done, total, time.Since(start)); ok && honestETA(st, ro) {
			desc += " · ETA " + eta.Round(time.Second).String()
		}
		bar.Describe(desc)
		select {
		case <-p.done:
			bar.Finish()
			return
		case <-tick.C:
		}
	}
}

// honestETA reports whether progressETA's estimate means anything: not
// while the run is paused, nor in a run of waves, whose pauses and drains
// the rate so far does not foresee (the status page estimates those).
func honestETA(st *runner.Stats, ro *runner.Rollout) bool {
	return !st.Paused() && (ro == nil || (ro.Canary == 0 && len(ro.Waves) == 0))
}

// progressETA estimates the time left from the rate at which jobs have
// finished so far; ok is false until one has.
func progressETA(done, total int, elapsed time.Duration) (rate float64, eta time.Duration, ok bool) {
	if done <= 0 || elapsed <= 0 {
		return 0, 0, false
	}
	rate = float64(done) / elapsed.Seconds()
	left := max(total-done, 0)
	return rate, time.Duration(float64(left) / rate * float64(time.Second)), true
}

// waveNote names the current wave, "" when the run has no waves.
func waveNote(ro *runner.Rollout) string {
	if ro == nil || (ro.Canary == 0 && len(ro.Waves) == 0) {
		return ""
	}
	n, canary := ro.Wave()
	if canary {
		return "canary · "
	}
	return fmt.Sprintf("wave %d · ", n)
}

func pausedNote(st *runner.Stats) string {
	if st.Paused() {
		return " · PAUSED"
	}
	return ""
}

func (p *progress) lines(a *app, st *runner.Stats, ro *runner.Rollout, total int) {
	tick := time.NewTicker(progressLogEvery)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		t := st.Totals()
		done := finishedCount(t)
		elapsed := time.Since(start)
		args := []any{"finished", done, "total", total, "sent", st.Sent(), "in_progress", st.Resetting(),
			"succeeded", t[store.StatusSucceeded], "failed", t[store.StatusFailed], "unknown", t[store.StatusUnknown],
			"unhealthy", t[store.StatusUnhealthy], "skipped", t[store.StatusSkipped], "resets_per_s", roundTo(float64(st.Sent())/elapsed.Seconds(), 2)}
		if ro != nil && (ro.Canary > 0 || len(ro.Waves) > 0) {
			n, canary := ro.Wave()
			args = append(args, "wave", n, "canary", canary)
		}
		if st.Paused() {
			args = append(args, "paused", true)
		}
		if _, eta, ok := progressETA(done, total, elapsed); ok && done < total && honestETA(st, ro) {
			args = append(args, "eta", eta.Round(time.Second))
		}
		a.progressLog.Info("progress", args...)
	}
}
