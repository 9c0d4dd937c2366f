package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

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

func (a *app) startProgress(st *runner.Stats, total int) *progress {
	p := &progress{done: make(chan struct{})}
	if total == 0 {
		return p
	}
	f, tty := a.stderr.(*os.File)
	tty = tty && term.IsTerminal(int(f.Fd()))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if tty {
			p.bar(a.stderr, st, total)
		} else {
			p.lines(a, st, total)
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

func (p *progress) bar(w io.Writer, st *runner.Stats, total int) {
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		t := st.Totals()
		bar.Describe(fmt.Sprintf("sent %d · in progress %d · ok %d · failed %d · unknown %d · skipped %d%s",
			st.Submitted.Load(), st.InFlight.Load(), t[store.StatusSucceeded], t[store.StatusFailed],
			t[store.StatusUnknown], t[store.StatusSkipped], pausedNote(st)))
		bar.Set(finishedCount(t))
		select {
		case <-p.done:
			bar.Finish()
			return
		case <-tick.C:
		}
	}
}

func pausedNote(st *runner.Stats) string {
	if st.Paused() {
		return " · PAUSED"
	}
	return ""
}

func (p *progress) lines(a *app, st *runner.Stats, total int) {
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
		rate := float64(st.Submitted.Load()) / time.Since(start).Seconds()
		args := []any{"finished", done, "total", total, "sent", st.Submitted.Load(), "in_progress", st.InFlight.Load(),
			"succeeded", t[store.StatusSucceeded], "failed", t[store.StatusFailed], "unknown", t[store.StatusUnknown],
			"skipped", t[store.StatusSkipped], "resets_per_s", fmt.Sprintf("%.2f", rate)}
		if rate > 0 && done < total {
			args = append(args, "eta", time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second))
		}
		a.log.Info("progress", args...)
	}
}
