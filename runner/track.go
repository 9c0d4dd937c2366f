package runner

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// track owns every task that waits on the cloud: submitted resets, calls in
// doubt and busy instances. Each poll it describes them in batches of up to
// 100 per region and moves each one on. It also takes the pre-send
// snapshots of the feed (describeAhead), whose calls carry the tracked
// instances of their region where there is room: a region so described
// is left out of the next poll if that came less than half an interval
// after.
func (r *Runner) track(ctx context.Context) error {
	tasks := map[int64]*task{}
	polled := map[string]time.Time{} // by region: when its tracked instances were last all described
	var outbox []*task               // tasks going back to the senders
	timer := time.NewTimer(jitter(r.cfg.PollInterval))
	defer timer.Stop()
	for {
		var sendq chan *task
		var next *task
		if len(outbox) > 0 {
			sendq, next = r.sendq, outbox[0]
			if !r.needsAdmission(next) && !r.needsBefore(next) {
				sendq = r.againq
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case t := <-r.trackq:
			tasks[t.job.ID] = t
			r.stats.addWaiting(tasks, t)
		case req := <-r.describeq:
			outbox = append(outbox, r.describeAhead(ctx, tasks, polled, req)...)
			r.stats.setWaiting(tasks)
		case sendq <- next:
			outbox = outbox[1:]
		case <-timer.C:
			if len(tasks) > 0 {
				outbox = append(outbox, r.poll(ctx, tasks, polled)...)
				r.stats.setWaiting(tasks)
			}
			timer.Reset(jitter(r.cfg.PollInterval))
		}
	}
}

// describeReq asks the tracker for the pre-send snapshot of instances by
// region; the answer comes on reply (buffered), as DescribeRegions gives it.
type describeReq struct {
	byRegion map[string][]string
	reply    chan describeAnswer
}

type describeAnswer struct {
	seen   Instances
	failed map[string]error
	err    error
}

// describeAhead describes the instances of req, adding to each region's
// last call as many of that region's tracked instances as it has room for,
// answers req, then judges the tracked instances it described. A region
// whose tracked instances all came along counts as polled.
func (r *Runner) describeAhead(ctx context.Context, tasks map[int64]*task, polled map[string]time.Time, req describeReq) (resend []*task) {
	byRegion := make(map[string][]string, len(req.byRegion))
	room := map[string]int{}
	for region, ids := range req.byRegion {
		byRegion[region] = ids
		room[region] = (lighthouse.MaxIDsPerCall - len(ids)%lighthouse.MaxIDsPerCall) % lighthouse.MaxIDsPerCall
	}
	var along []*task
	whole := map[string]bool{}
	for region := range room {
		whole[region] = true
	}
	for _, t := range tasks {
		region := t.job.Region
		if _, ok := room[region]; !ok || t.kind == kindBaking || t.inHealth() {
			continue
		}
		if room[region] == 0 {
			whole[region] = false
			continue
		}
		room[region]--
		byRegion[region] = append(byRegion[region], t.job.InstanceID)
		along = append(along, t)
	}
	seen, failed, err := r.cloud.DescribeRegions(ctx, byRegion)
	req.reply <- describeAnswer{seen, failed, err}
	if err != nil {
		return nil
	}
	now := time.Now()
	for region, ok := range whole {
		if ok && failed[region] == nil {
			polled[region] = now
		}
	}
	return r.judgeTracked(ctx, tasks, along, seen, failed, now)
}

// describeForSend is the feed's pre-send snapshot: DescribeRegions of
// byRegion, taken by the tracker so that its calls also poll.
func (r *Runner) describeForSend(ctx context.Context, byRegion map[string][]string) (Instances, map[string]error, error) {
	req := describeReq{byRegion: byRegion, reply: make(chan describeAnswer, 1)}
	select {
	case r.describeq <- req:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	select {
	case a := <-req.reply:
		return a.seen, a.failed, a.err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// poll describes the tracked instances, judges each observation and
// applies the verdicts. A region whose tracked instances a pre-send
// snapshot described less than half an interval ago waits for the next
// poll, unless some of them are in a health state. A region any of whose
// calls failed is left out of this poll: its instances' absence says
// nothing.
func (r *Runner) poll(ctx context.Context, tasks map[int64]*task, polled map[string]time.Time) (resend []*task) {
	now := time.Now()
	recent := map[string]bool{}
	for region, at := range polled {
		if now.Sub(at) < r.cfg.PollInterval/2 {
			recent[region] = true
		}
	}
	for _, t := range tasks {
		if t.inHealth() {
			delete(recent, t.job.Region)
		}
	}
	byRegion := map[string][]string{}
	var described []*task
	for _, t := range tasks {
		if t.kind != kindBaking && !recent[t.job.Region] {
			byRegion[t.job.Region] = append(byRegion[t.job.Region], t.job.InstanceID)
			described = append(described, t)
		}
	}
	seen, failed, err := r.cloud.DescribeRegions(ctx, byRegion)
	if err != nil || r.adm.load().mode == admitBroken {
		return nil // a state that cannot be written ends the run (see unwritable)
	}
	for region, err := range failed {
		r.log.Warn("describe in-flight instances", "region", region, "err", err)
	}
	now = time.Now()
	for region := range byRegion {
		if failed[region] == nil {
			polled[region] = now
		}
	}
	resend = r.judgeTracked(ctx, tasks, described, seen, failed, now)
	r.pollHealth(ctx, tasks, seen, now)
	return resend
}

// judgeTracked judges the observation of each task of described (those
// whose instances were in the calls that gave seen, failed) outside the
// health states, applies the verdicts, and returns the tasks to send again.
// Tasks that end leave tasks.
func (r *Runner) judgeTracked(ctx context.Context, tasks map[int64]*task, described []*task, seen Instances, failed map[string]error, now time.Time) (resend []*task) {
	type decided struct {
		t *task
		v verdict
	}
	var todo []decided
	for _, t := range described {
		if failed[t.job.Region] != nil || t.inHealth() {
			continue // health states are judged by pollHealth
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
			delete(tasks, t.job.ID)
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
	return resend
}
