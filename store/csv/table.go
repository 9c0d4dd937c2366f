package csv

import (
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/batchreset/batchreset/store"
)

// table holds the jobs of a run compactly: about 100 bytes a job whatever
// its strings, against some 300 for a store.Job and its copies, so that a
// run of a million jobs fits in a small process. What the input fixes (the
// instance, blueprint, region and login settings) is packed once; what a
// run records is a fixed-size row, with request IDs as the 16 bytes of
// their UUID, times as Unix nanoseconds and errors as an index into a table
// of the distinct ones. What rarely differs from its zero value (NotBefore,
// Fence, a request ID that is not a lowercase UUID) lives in a side map.
//
// A table is not safe for concurrent use; Store guards it.
type table struct {
	ids   string     // every instance ID, concatenated
	in    []inputRow // by position in the input
	st    []stateRow
	extra map[int32]*extraState
	slots []int32 // open-addressing index of instance IDs: position+1, 0 empty
	// same is, for each job, the position of the next job of its lane
	// (-1: none), and first the first job of each lane: each lane's jobs
	// in order, for claims of one region of one account.
	same  []int32
	first map[lane]int32
	// lanes are each account's lanes, in the order the input first names
	// them, by the account's number in strs.
	lanes map[uint32][]lane
	seed  maphash.Seed

	strs  []string          // blueprints, regions, key ID lists; 0 is ""
	strIx map[string]uint32 // the index of each in strs
	errs  []errPair         // distinct (code, message) pairs; 0 is none
	errIx map[errPair]uint32

	stats  []store.Status // the statuses of stateRow.status; 0 is pending
	totals []int          // jobs by stateRow.status
}

// inputRow is what the input says about one job.
type inputRow struct {
	id         int64
	off        uint32 // of the instance ID in ids
	n          uint8  // its length
	autoPass   bool
	stateful   bool   // the input gave the job a state (a status, a time)
	bp, region uint32 // in strs
	keys       uint32 // the key IDs, joined by store.KeyIDSeparator, in strs
	account    uint32 // in strs
}

// lane is a region of an account, the jobs one claim takes from: the
// account's and the region's numbers in strs. Without accounts (account 0,
// "") a lane is a region.
type lane uint64

// laneOf returns the lane of input row r.
func laneOf(r *inputRow) lane { return lane(r.account)<<32 | lane(r.region) }

// stateRow is what a run records about one job, besides extraState.
type stateRow struct {
	req, prev                   [16]byte // as UUIDs; see the flags
	intent, submitted, finished int64    // Unix nanoseconds; 0: zero time
	err                         uint32   // in errs
	prevBP                      uint32   // PrevBlueprintID, in strs
	attempts                    int32
	status                      uint8 // in statuses
	flags                       uint8
}

// stateRow flags.
const (
	hasReq   = 1 << iota // req holds a request ID (else "")
	hasPrev              // prev holds one
	hasExtra             // extra holds more of the job
)

// extraState is the rest of a job, for the few that need it.
type extraState struct {
	notBefore time.Time
	fence     int64
	req, prev string // request IDs that are not lowercase UUIDs
	hook      store.HookPhase
}

type errPair struct{ code, message string }

// statusCode returns the number of s in t.stats, adding it if need be.
func (t *table) statusCode(s store.Status) (uint8, error) {
	for i, st := range t.stats {
		if st == s {
			return uint8(i), nil
		}
	}
	if !s.Valid() || len(t.stats) == math.MaxUint8 {
		return 0, fmt.Errorf("invalid status %q", s)
	}
	t.stats = append(t.stats, s)
	t.totals = append(t.totals, 0)
	return uint8(len(t.stats) - 1), nil
}

func newTable(n int) *table {
	t := &table{
		extra:  make(map[int32]*extraState),
		seed:   maphash.MakeSeed(),
		strs:   []string{""},
		strIx:  map[string]uint32{"": 0},
		errs:   []errPair{{}},
		errIx:  map[errPair]uint32{{}: 0},
		stats:  []store.Status{store.StatusPending},
		totals: []int{0},
	}
	t.in, t.st = offHeap[inputRow](n, t), offHeap[stateRow](n, t)
	return t
}

// builder adds the input's jobs to a new table, in order.
type builder struct {
	t   *table
	ids strings.Builder
}

// add appends input job j, whose status and recorded fields are the job's
// state before any journal record.
func (b *builder) add(j *store.Job) error {
	t := b.t
	if j.InstanceID == "" {
		return fmt.Errorf("job %d has no instance ID", j.ID)
	}
	if len(j.InstanceID) > math.MaxUint8 || b.ids.Len()+len(j.InstanceID) > math.MaxUint32 {
		return fmt.Errorf("job %d: instance ID or input too long", j.ID)
	}
	if len(t.in) == math.MaxInt32-1 {
		return fmt.Errorf("job %d: too many jobs", j.ID)
	}
	row := inputRow{
		id: j.ID, off: uint32(b.ids.Len()), n: uint8(len(j.InstanceID)), autoPass: j.AutoGeneratePassword,
		bp: t.intern(j.BlueprintID), region: t.intern(j.Region), keys: t.intern(strings.Join(j.KeyIDs, store.KeyIDSeparator)),
		account: t.intern(j.Account),
	}
	base := t.inputOf(j)
	base.Status = store.StatusPending
	row.stateful = !sameState(&base, j)
	b.ids.WriteString(j.InstanceID)
	t.in = append(t.in, row)
	t.st = append(t.st, stateRow{})
	t.totals[0]++ // pending, until set says otherwise
	return t.set(len(t.in)-1, j)
}

// finish builds the instance index, refusing an instance that appears twice.
func (b *builder) finish() (*table, error) {
	t := b.t
	t.ids = b.ids.String()
	size := 1
	for size < 2*len(t.in) {
		size <<= 1
	}
	t.slots = offHeap[int32](size, t)[:size]
	for i := range t.in {
		id := t.instance(i)
		k := t.probe(id)
		if t.slots[k] != 0 {
			return nil, fmt.Errorf("instance %s appears twice in the input", id)
		}
		t.slots[k] = int32(i) + 1
	}
	t.same, t.first = offHeap[int32](len(t.in), t)[:len(t.in)], map[lane]int32{}
	for i := len(t.in) - 1; i >= 0; i-- {
		r := laneOf(&t.in[i])
		next, ok := t.first[r]
		if !ok {
			next = -1
		}
		t.same[i], t.first[r] = next, int32(i)
	}
	t.lanes = map[uint32][]lane{}
	for i := range t.in {
		if r := laneOf(&t.in[i]); t.first[r] == int32(i) {
			a := t.in[i].account
			t.lanes[a] = append(t.lanes[a], r)
		}
	}
	return t, nil
}

// probe returns the slot of id: where it is, or the empty one where it
// would go.
func (t *table) probe(id string) int {
	mask := len(t.slots) - 1
	k := int(maphash.String(t.seed, id)) & mask
	for {
		p := t.slots[k]
		if p == 0 || t.instance(int(p-1)) == id {
			return k
		}
		k = (k + 1) & mask
	}
}

// find returns the position of instance id.
func (t *table) find(id string) (int, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	p := t.slots[t.probe(id)]
	return int(p - 1), p != 0
}

func (t *table) len() int { return len(t.in) }

func (t *table) instance(i int) string {
	r := &t.in[i]
	return t.ids[r.off : r.off+uint32(r.n)]
}

func (t *table) status(i int) store.Status { return t.stats[t.st[i].status] }

func (t *table) intern(s string) uint32 {
	if k, ok := t.strIx[s]; ok {
		return k
	}
	s = strings.Clone(s)
	t.strs = append(t.strs, s)
	k := uint32(len(t.strs) - 1)
	t.strIx[s] = k
	return k
}

// hasState reports whether job i has anything beyond its input's fields
// and pending, or had so in the input.
func (t *table) hasState(i int) bool {
	return t.st[i] != stateRow{} || t.in[i].stateful
}

// stateful counts the jobs that hasState: the records of a compact journal.
func (t *table) stateful() int {
	n := 0
	for i := range t.in {
		if t.hasState(i) {
			n++
		}
	}
	return n
}

// inputOf returns the input's fields of j.
func (t *table) inputOf(j *store.Job) store.Job {
	return store.Job{
		ID: j.ID, InstanceID: j.InstanceID, BlueprintID: j.BlueprintID, Region: j.Region, Account: j.Account,
		KeyIDs: j.KeyIDs, AutoGeneratePassword: j.AutoGeneratePassword,
	}
}

// sameState reports whether a and b record the same state.
func sameState(a, b *store.Job) bool {
	return a.Status == b.Status && a.RequestID == b.RequestID && a.PrevRequestID == b.PrevRequestID &&
		a.PrevBlueprintID == b.PrevBlueprintID &&
		a.ErrorCode == b.ErrorCode && a.ErrorMessage == b.ErrorMessage && a.Attempts == b.Attempts &&
		a.NotBefore.Equal(b.NotBefore) && a.IntentAt.Equal(b.IntentAt) && a.SubmittedAt.Equal(b.SubmittedAt) &&
		a.FinishedAt.Equal(b.FinishedAt) && a.Fence == b.Fence && a.HookPhase == b.HookPhase
}

// input returns the input's fields of job i in j, leaving the rest zero.
func (t *table) input(i int) store.Job {
	r := &t.in[i]
	j := store.Job{
		ID: r.id, InstanceID: t.instance(i), BlueprintID: t.strs[r.bp], Region: t.strs[r.region],
		Account: t.strs[r.account], AutoGeneratePassword: r.autoPass,
	}
	if k := t.strs[r.keys]; k != "" {
		j.KeyIDs = strings.Split(k, store.KeyIDSeparator)
	}
	return j
}

// get returns job i.
func (t *table) get(i int) store.Job {
	j := t.input(i)
	s := &t.st[i]
	j.Status = t.stats[s.status]
	j.Attempts = int(s.attempts)
	e := t.errs[s.err]
	j.ErrorCode, j.ErrorMessage = e.code, e.message
	j.PrevBlueprintID = t.strs[s.prevBP]
	j.IntentAt, j.SubmittedAt, j.FinishedAt = fromNanos(s.intent), fromNanos(s.submitted), fromNanos(s.finished)
	var x *extraState
	if s.flags&hasExtra != 0 {
		x = t.extra[int32(i)]
		j.NotBefore, j.Fence = x.notBefore, x.fence
		j.RequestID, j.PrevRequestID = x.req, x.prev
		j.HookPhase = x.hook
	}
	if s.flags&hasReq != 0 {
		j.RequestID = formatUUID(&s.req)
	}
	if s.flags&hasPrev != 0 {
		j.PrevRequestID = formatUUID(&s.prev)
	}
	return j
}

// set records what j says of job i beyond the input.
func (t *table) set(i int, j *store.Job) error {
	code, err := t.statusCode(j.Status)
	if err != nil {
		return err
	}
	if int64(j.Attempts) > math.MaxInt32 || j.Attempts < 0 {
		return fmt.Errorf("attempts %d out of range", j.Attempts)
	}
	s := &t.st[i]
	t.totals[s.status]--
	t.totals[code]++
	*s = stateRow{status: code, attempts: int32(j.Attempts)}
	s.err = t.errCode(j.ErrorCode, j.ErrorMessage)
	s.prevBP = t.intern(j.PrevBlueprintID)
	s.intent, s.submitted, s.finished = toNanos(j.IntentAt), toNanos(j.SubmittedAt), toNanos(j.FinishedAt)
	var x extraState
	if parseUUID(j.RequestID, &s.req) {
		s.flags |= hasReq
	} else {
		x.req = j.RequestID
	}
	if parseUUID(j.PrevRequestID, &s.prev) {
		s.flags |= hasPrev
	} else {
		x.prev = j.PrevRequestID
	}
	x.notBefore, x.fence, x.hook = j.NotBefore, j.Fence, j.HookPhase
	if x != (extraState{}) {
		s.flags |= hasExtra
		t.extra[int32(i)] = &x
	} else {
		delete(t.extra, int32(i))
	}
	return nil
}

func (t *table) errCode(code, message string) uint32 {
	p := errPair{code, message}
	if k, ok := t.errIx[p]; ok {
		return k
	}
	p = errPair{strings.Clone(code), strings.Clone(message)}
	t.errs = append(t.errs, p)
	k := uint32(len(t.errs) - 1)
	t.errIx[p] = k
	return k
}

// namesAccounts reports whether a job names an account.
func (t *table) namesAccounts() bool {
	for a := range t.lanes {
		if a != 0 {
			return true
		}
	}
	return false
}

// count counts the jobs for Count.
func (t *table) count() store.Count {
	sum := store.Count{Totals: t.totalsMap(), Jobs: t.len()}
	seen := make(map[uint32]bool)
	named := t.namesAccounts()
	accounts := map[uint32]int{} // the account's place in sum.Accounts
	regions := map[lane]bool{}
	for i := range t.len() {
		if named {
			a := t.in[i].account
			k, ok := accounts[a]
			if !ok {
				k = len(sum.Accounts)
				accounts[a] = k
				sum.Accounts = append(sum.Accounts, store.AccountCount{Account: t.strs[a], Totals: store.Totals{}})
			}
			as := &sum.Accounts[k]
			as.Jobs++
			as.Totals[t.status(i)]++
			if !t.status(i).Terminal() {
				as.Unfinished++
				if l := laneOf(&t.in[i]); !regions[l] {
					regions[l] = true
					as.Regions = append(as.Regions, t.strs[t.in[i].region])
				}
			}
		}
		if t.status(i).Terminal() {
			continue
		}
		sum.Unfinished++
		if r := t.in[i].region; !seen[r] {
			seen[r] = true
			sum.Regions = append(sum.Regions, t.strs[r])
		}
		if len(sum.Sample) < store.CountSample {
			sum.Sample = append(sum.Sample, t.instance(i))
		}
	}
	slices.Sort(sum.Regions)
	for k := range sum.Accounts {
		slices.Sort(sum.Accounts[k].Regions)
	}
	return sum
}

// totalsMap returns the counts by status, without the zero ones.
func (t *table) totalsMap() store.Totals {
	m := make(store.Totals)
	for k, n := range t.totals {
		if n > 0 {
			m[t.stats[k]] = n
		}
	}
	return m
}

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// parseUUID stores s in u if it is a UUID in canonical lowercase form.
func parseUUID(s string, u *[16]byte) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	var buf [32]byte
	n := copy(buf[:], s[0:8])
	n += copy(buf[n:], s[9:13])
	n += copy(buf[n:], s[14:18])
	n += copy(buf[n:], s[19:23])
	copy(buf[n:], s[24:36])
	for _, c := range buf {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	_, err := hex.Decode(u[:], buf[:])
	return err == nil
}

func formatUUID(u *[16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
