package runner

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/store"
)

// track owns every task that waits on the cloud: submitted resets, calls in
// doubt and busy instances. Each poll it describes them in batches of up to
// 100 per region and moves each one on.
func (r *Runner) track(ctx context.Context) error {
	tasks := map[int64]*task{}
	var outbox []*task // tasks going back to the senders
	timer := time.NewTimer(jitter(r.cfg.PollInterval))
	defer timer.Stop()
	for {
		var sendq chan *task
		var next *task
		if len(outbox) > 0 {
			sendq, next = r.sendq, outbox[0]
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case t := <-r.trackq:
			tasks[t.job.ID] = t
			r.stats.addWaiting(tasks, t)
		case sendq <- next:
			outbox = outbox[1:]
		case <-timer.C:
			if len(tasks) > 0 {
				outbox = append(outbox, r.poll(ctx, tasks)...)
				r.stats.setWaiting(tasks)
			}
			timer.Reset(jitter(r.cfg.PollInterval))
		}
	}
}

// poll describes every tracked instance, judges each observation and
// applies the verdicts. A region any of whose calls failed is left out of
// this poll: its instances' absence says nothing.
func (r *Runner) poll(ctx context.Context, tasks map[int64]*task) (resend []*task) {
	byRegion := map[string][]string{}
	for _, t := range tasks {
		if t.kind != kindBaking {
			byRegion[t.job.Region] = append(byRegion[t.job.Region], t.job.InstanceID)
		}
	}
	seen, failed, err := r.cloud.DescribeRegions(ctx, byRegion)
	if err != nil {
		return nil
	}
	for region, err := range failed {
		r.log.Warn("describe in-flight instances", "region", region, "err", err)
	}
	now := time.Now()
	type decided struct {
		t *task
		v verdict
	}
	var todo []decided
	for id, t := range tasks {
		if failed[t.job.Region] != nil || t.inHealth() {
			continue // health states are judged by pollHealth below
		}
		in, ok := seen.Get(t.job.Region, t.job.InstanceID)
		t.observe(in, ok)
		v := judge(t, in, ok, now, r.lim)
		if v.act == actKeep {
			continue
		}
		if v.act == actFinish && v.status == store.StatusSucceeded && r.cfg.Health.enabled() {
			r.log.Debug("reset succeeded; checking health", "instance_id", t.job.InstanceID, "request_id", t.job.RequestID)
			if r.cfg.Health.Mode == HealthNone {
				t.baking(now)
			} else {
				t.checking(now)
			}
			continue
		}
		todo = append(todo, decided{t, v})
		if v.act != actAdopt {
			delete(tasks, id)
		}
	}
	// Outcomes are written concurrently: each write is durable on its own and
	// stores commit concurrent writes together.
	keep := make([]bool, len(todo)) // written, and still ours
	g := new(errgroup.Group)
	g.SetLimit(32)
	for i, d := range todo {
		g.Go(func() error {
			t, v := d.t, d.v
			switch v.act {
			case actAdopt:
				t.adopted(v.requestID, now)
				r.log.Info("in-doubt reset found applied; adopting it", "instance_id", t.job.InstanceID, "request_id", t.job.RequestID)
				keep[i] = r.save(ctx, t) == nil
			case actFinish:
				if v.code == CodeResetTwice {
					r.stats.ResetTwice.Add(1)
				}
				r.finish(ctx, t, v.status, v.code, v.msg)
			case actResend:
				if t.kind == kindInDoubt {
					r.log.Info("in-doubt reset proven not applied; sending again", "instance_id", t.job.InstanceID, "attempt", t.job.Attempts)
				}
				t.sendAgain(v.latest)
				keep[i] = r.save(ctx, t) == nil
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, d := range todo {
		switch {
		case d.v.act == actAdopt && !keep[i]:
			delete(tasks, d.t.job.ID)
		case d.v.act == actResend && keep[i]:
			resend = append(resend, d.t)
		}
	}
	r.pollHealth(ctx, tasks, seen, now)
	return resend
}
