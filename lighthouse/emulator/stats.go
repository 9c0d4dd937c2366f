package emulator

import (
	"slices"
	"sync"
	"time"
)

// Stats is what the emulator saw, for assertions: which resets it applied
// and how each action was called. Stats returns a copy; GET /_emulator/stats
// serves the same as JSON.
type Stats struct {
	// Resets maps an instance ID to the RequestIds of the resets applied to
	// it (accepted, including those whose answer a fault then spoiled), in
	// the order they were applied. Instances never reset are absent.
	Resets map[string][]string
	// ResetLog maps an instance ID to the resets applied to it, in order,
	// with what each did to the login settings. It never holds a password.
	ResetLog map[string][]ResetRecord
	// AssumedRoles lists the AssumeRole calls that handed out temporary
	// credentials, in order.
	AssumedRoles []AssumedRole
	// Invocations lists the RunCommand invocations accepted, in order.
	Invocations []InvocationRecord
	// Actions maps an action name, as sent in X-TC-Action, to its counts
	// over every call.
	Actions map[string]ActionStats
	// ByAccount maps an account's UIN to the counts of the calls that acted
	// in it (those whose signature was verified), by action. Each account
	// has its own rate-limit windows, so its MaxPerSecond and OverLimit
	// are its own; in Actions, MaxPerSecond counts the arrivals of every
	// account in one window. Accounts never called are absent.
	ByAccount map[string]map[string]ActionStats
}

// ResetRecord is one reset the emulator applied. A password given in
// LoginConfiguration is checked and then forgotten: only PasswordSet says
// there was one.
type ResetRecord struct {
	// RequestID is the RequestId of the ResetInstance call.
	RequestID string
	// Account is the UIN of the account that owns the instance, and
	// SignedBy that of the account the call acted in: its key's, or for a
	// temporary key, its role's.
	Account, SignedBy string
	// BlueprintID is the image the reset installs.
	BlueprintID string
	// KeyIDs are LoginConfiguration.KeyIds, bound when the reset succeeds;
	// nil when the call gave none.
	KeyIDs []string
	// PasswordSet reports that LoginConfiguration.Password was given.
	PasswordSet bool
	// AutoGeneratePassword reports LoginConfiguration.AutoGeneratePassword
	// YES.
	AutoGeneratePassword bool
	// Containers counts the Containers the call gave.
	Containers int
	// At is when the emulator accepted the call, and Ends when the reset
	// ends, on the emulator's clock.
	At, Ends time.Time
}

// ActionStats counts the calls of one action.
type ActionStats struct {
	// Calls counts every request naming the action, whatever its outcome.
	Calls int
	// Rejected counts calls answered RequestLimitExceeded, by the rate limit
	// or an injected FaultThrottle.
	Rejected int
	// Errors counts calls answered with any other error: an error envelope
	// (authentication, validation, business rules, FaultError) or an
	// injected 5xx.
	Errors int
	// Faults counts calls an injected fault affected, of any kind.
	Faults int
	// OverLimit counts calls that arrived in a one-second window already at
	// the action's limit in their account, that is, calls the rate limit
	// rejected.
	OverLimit int
	// MaxPerSecond is the largest number of calls that arrived in one fixed
	// one-second window (a Unix second), counting rejected ones. Only calls
	// that passed authentication and named a known action and version reach
	// the rate limiter and count here.
	MaxPerSecond int
}

// outcome is how a call was answered, for ActionStats.
type outcome int

const (
	outcomeOK outcome = iota
	outcomeRejected
	outcomeError
)

// recorder keeps ActionStats and the rate-limit windows, over every call
// and by account. Its methods are safe for concurrent use and exact: every
// update happens under one mutex.
type recorder struct {
	mu        sync.Mutex
	actions   map[string]*actionRecord
	byAccount map[string]map[string]*actionRecord
}

type actionRecord struct {
	ActionStats
	// windows counts arrivals per Unix second. Only the last few seconds are
	// kept: a call is counted in the window of its arrival even if a later
	// arrival got the lock first.
	windows map[int64]int
	newest  int64
}

// windowsKept is how many recent one-second windows a recorder keeps.
const windowsKept = 4

// record returns the record of action in records, creating it.
func record(records map[string]*actionRecord, action string) *actionRecord {
	a := records[action]
	if a == nil {
		a = &actionRecord{windows: make(map[int64]int)}
		records[action] = a
	}
	return a
}

// total returns the record of action over every call. The caller holds
// rc.mu.
func (rc *recorder) total(action string) *actionRecord {
	if rc.actions == nil {
		rc.actions = make(map[string]*actionRecord)
	}
	return record(rc.actions, action)
}

// of returns the record of action in account uin. The caller holds rc.mu.
func (rc *recorder) of(uin, action string) *actionRecord {
	if rc.byAccount == nil {
		rc.byAccount = make(map[string]map[string]*actionRecord)
	}
	if rc.byAccount[uin] == nil {
		rc.byAccount[uin] = make(map[string]*actionRecord)
	}
	return record(rc.byAccount[uin], action)
}

// arrive counts a call of action.
func (rc *recorder) arrive(action string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.total(action).Calls++
}

// attribute counts a call of action, already counted by arrive, in the
// account uin it acts in.
func (rc *recorder) attribute(uin, action string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.of(uin, action).Calls++
}

// admit counts a call of action in account uin arriving in window second
// and reports whether the account's limit (per second; negative means
// unlimited) lets it run.
func (rc *recorder) admit(uin, action string, second int64, limit int) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	a, t := rc.of(uin, action), rc.total(action)
	n := a.count(second)
	t.count(second)
	if limit >= 0 && n > limit {
		a.OverLimit++
		t.OverLimit++
		return false
	}
	return true
}

// count counts an arrival in window second and returns the window's
// arrivals so far.
func (a *actionRecord) count(second int64) int {
	a.windows[second]++
	n := a.windows[second]
	a.MaxPerSecond = max(a.MaxPerSecond, n)
	if second > a.newest {
		a.newest = second
		for w := range a.windows {
			if w <= second-windowsKept {
				delete(a.windows, w)
			}
		}
	}
	return n
}

// finish counts how a call of action was answered, in account uin too
// unless uin is "" (the signature was not verified).
func (rc *recorder) finish(uin, action string, o outcome, faulted bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.total(action).finish(o, faulted)
	if uin != "" {
		rc.of(uin, action).finish(o, faulted)
	}
}

func (a *actionRecord) finish(o outcome, faulted bool) {
	switch o {
	case outcomeRejected:
		a.Rejected++
	case outcomeError:
		a.Errors++
	}
	if faulted {
		a.Faults++
	}
}

// snapshot returns the counts over every call and by account.
func (rc *recorder) snapshot() (map[string]ActionStats, map[string]map[string]ActionStats) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	stats := func(records map[string]*actionRecord) map[string]ActionStats {
		out := make(map[string]ActionStats, len(records))
		for name, a := range records {
			out[name] = a.ActionStats
		}
		return out
	}
	byAccount := make(map[string]map[string]ActionStats, len(rc.byAccount))
	for uin, records := range rc.byAccount {
		byAccount[uin] = stats(records)
	}
	return stats(rc.actions), byAccount
}

// Stats returns a copy of what the emulator has seen so far. It is safe for
// concurrent use.
func (s *Server) Stats() Stats {
	st := Stats{Resets: make(map[string][]string), ResetLog: make(map[string][]ResetRecord)}
	st.Actions, st.ByAccount = s.stats.snapshot()
	s.tempMu.RLock()
	st.AssumedRoles = slices.Clone(s.assumed)
	s.tempMu.RUnlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, a := range s.accounts {
		for _, in := range a.all {
			if len(in.resets) == 0 {
				continue
			}
			ids := make([]string, len(in.resets))
			log := make([]ResetRecord, len(in.resets))
			for i, r := range in.resets {
				ids[i] = r.RequestID
				r.Account, r.KeyIDs = a.uin, slices.Clone(r.KeyIDs)
				log[i] = r
			}
			st.Resets[in.ID], st.ResetLog[in.ID] = ids, log
		}
	}
	for _, inv := range s.invocations {
		st.Invocations = append(st.Invocations, inv.record())
	}
	return st
}
