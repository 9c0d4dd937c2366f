package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/store"
)

// Account is one account of a run over several, for a Group: the name the
// jobs give it (store.Job.Account, "" for the run's own credential), the
// Config of its runner, and its own failure budget.
//
// Config is a whole runner's: its API clients sign with the account's
// credential, its Shared limits are the account's identity's, its Holds
// are the account's registry, and its Store claims only the account's jobs
// (the CSV store's View, the Postgres store's AccountQueue). Its Rollout
// must be the one every Account of the Group has: the run's rollout.
type Account struct {
	Name   string
	Config Config
	// MaxFailures is the account's own failure budget: once more than
	// MaxFailures of its jobs have ended failed, unknown or unhealthy (or
	// skipped by a failed before-hook, store.Job.Failure), its runner starts
	// no new reset, and its jobs not sent end skipped with
	// CodeAccountBudget; the other accounts go on. The run's budget
	// (Rollout.MaxFailures) counts the same failures too. Negative: none.
	MaxFailures int
}

// CodeAccountBudget is the error code of a job skipped because its
// account's failure budget (Account.MaxFailures) was exceeded.
const CodeAccountBudget = "AccountBudgetExceeded"

// Group runs one Runner per account side by side, in one process: each with
// its own Cloud (limiters at the account's limit, throttle gates, senders,
// unreachable detection), holds and jobs, so that one slow, throttled or
// failing account never holds back another's resets. What belongs to the
// run is shared by all of them, as by the runners of one Postgres run: the
// rollout (one Rollout: canary, waves, the run's failure budget,
// approvals, what an exceeded budget does) and the operator's control and
// pauses (through the store). A fatal error, or an exceeded
// Account.MaxFailures, stops that account's resets only.
//
// Use NewGroup, then Run once. A Group of one account behaves as that
// account's Runner alone.
type Group struct {
	accounts []Account
	runners  []*Runner
	stats    Stats
	onEvent  func(Event)

	mu sync.Mutex
	// seen are the run's moments reported already; control is the latest
	// pause or resume reported, which every runner reads on its own.
	seen    map[eventKey]bool
	control eventKey
}

// eventKey is what makes two runners' events the same moment of the run.
type eventKey struct {
	kind   EventKind
	wave   int
	reason string
}

// NewGroup checks the accounts and returns a Group. onEvent, if set, is told
// of the run's moments once, whichever runner saw them first (an account's
// own stop names the account in Event.Reason); it must return at once.
func NewGroup(accounts []Account, onEvent func(Event)) (*Group, error) {
	if len(accounts) == 0 {
		return nil, errors.New("runner: a group needs an account")
	}
	g := &Group{accounts: accounts, onEvent: onEvent, seen: map[eventKey]bool{}}
	names := map[string]bool{}
	for i, a := range accounts {
		if names[a.Name] {
			return nil, fmt.Errorf("runner: account %q given twice", a.Name)
		}
		names[a.Name] = true
		if a.Config.Rollout != accounts[0].Config.Rollout {
			return nil, fmt.Errorf("runner: account %q has a rollout of its own: the accounts of a run share the run's", a.Name)
		}
		cfg := a.Config
		if len(accounts) > 1 {
			cfg.OnEvent = g.relay(i)
		}
		r, err := New(cfg)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", a.Name, err)
		}
		if a.MaxFailures >= 0 {
			r.budget = &accountBudget{name: a.Name, max: a.MaxFailures}
		}
		g.runners = append(g.runners, r)
		g.stats.parts = append(g.stats.parts, &r.stats)
	}
	return g, nil
}

// relay returns the OnEvent of account i's runner: the run's moments go to
// the Group's onEvent once, and a stop of the run (its budget, a canary,
// the window, a cancel) stops every account at once rather than at each
// one's next admission.
func (g *Group) relay(i int) func(Event) {
	return func(e Event) {
		if e.Kind == EventStopped && !g.accountStop(i, e.Reason) {
			for k, r := range g.runners {
				if k != i {
					r.stopStarting(e.Reason)
				}
			}
		}
		if !g.first(eventKey{e.Kind, e.Wave, e.Reason}) || g.onEvent == nil {
			return
		}
		e.Totals = g.stats.Totals()
		g.onEvent(e)
	}
}

// first reports whether k is a moment of the run no runner has reported
// yet: a pause or resume unlike the latest one, any other moment for the
// first time.
func (g *Group) first(k eventKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if k.kind == EventPaused || k.kind == EventResumed {
		if g.control == k {
			return false
		}
		g.control = k
		return true
	}
	if g.seen[k] {
		return false
	}
	g.seen[k] = true
	return true
}

// accountStop reports whether why is account i's own stop (its budget)
// rather than the run's.
func (g *Group) accountStop(i int, why string) bool {
	st := g.runners[i].adm.load()
	return st.reason == why && st.code == CodeAccountBudget
}

// Run runs every account's runner until each has finished (see Runner.Run)
// and returns their Summaries merged, with Summary.Accounts breaking them
// down by account, and their errors joined, each naming its account. A
// Group of one account returns its runner's Summary and error as they are.
func (g *Group) Run(ctx context.Context) (Summary, error) {
	if len(g.runners) == 1 {
		return g.runners[0].Run(ctx)
	}
	sums := make([]Summary, len(g.runners))
	errs := make([]error, len(g.runners))
	// Not errgroup.WithContext: one account's fatal error stops that
	// account alone.
	var eg errgroup.Group
	for i, r := range g.runners {
		eg.Go(func() error {
			sums[i], errs[i] = r.Run(ctx)
			if errs[i] != nil {
				errs[i] = &AccountError{Account: g.accounts[i].Name, Err: errs[i]}
			}
			return nil
		})
	}
	eg.Wait()
	sum := Summary{Totals: store.Totals{}, Accounts: map[string]Summary{}}
	for i, s := range sums {
		sum.add(s)
		sum.Accounts[g.accounts[i].Name] = s
	}
	return sum, errors.Join(errs...)
}

// Drain stops new submissions in every account (see Runner.Drain).
func (g *Group) Drain() {
	for _, r := range g.runners {
		r.Drain()
	}
}

// SetControl applies the operator's control to every account (see
// Runner.SetControl).
func (g *Group) SetControl(c store.Control) {
	for _, r := range g.runners {
		r.SetControl(c)
	}
}

// Stats returns the live counters of the whole run: the sums of the
// accounts' (see Stats).
func (g *Group) Stats() *Stats { return &g.stats }

// AccountError is an error that ended one account's runner in a Group.
type AccountError struct {
	Account string
	Err     error
}

func (e *AccountError) Error() string { return fmt.Sprintf("account %q: %v", e.Account, e.Err) }
func (e *AccountError) Unwrap() error { return e.Err }

// accountBudget is the failure budget of one account of a Group
// (Account.MaxFailures).
type accountBudget struct {
	name     string
	max      int
	failures atomic.Int64
}

// finished counts j's outcome against the budget (store.Job.Failure) and
// stops the account once it is exceeded. A nil budget counts nothing.
func (b *accountBudget) finished(r *Runner, j store.Job) {
	if b == nil || !j.Failure() {
		return
	}
	if n := b.failures.Add(1); n > int64(b.max) {
		why := fmt.Sprintf("account %q: failure budget exceeded (%d failed, budget %d); the other accounts go on", b.name, n, b.max)
		if r.adm.stop(why, CodeAccountBudget) {
			r.log.Warn("no new resets in the account", "account", b.name, "reason", why)
			r.emit(EventStopped, 0, why)
		}
	}
}
