package csv

import (
	"context"
	"slices"

	"github.com/batchreset/batchreset/store"
)

// View is the part of a Store that the runner of one account works: its
// Claim hands out only the jobs of that account (store.Job.Account);
// everything else (Save, Release, the run's control and pauses) is the
// Store's, shared by every View of it. Get one from Store.View. A View is
// safe for concurrent use.
type View struct {
	*Store
	lanes []lane // the account's lanes, in input order
	last  lane   // the lane of the last claim, or anyLane; guarded by Store.mu
}

// View returns the view of the jobs of account ("" for the jobs that name
// none). An account no job names has nothing to claim.
func (s *Store) View(account string) *View {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &View{Store: s, last: anyLane, lanes: []lane{}}
	if k, ok := s.tab.strIx[account]; ok {
		v.lanes = slices.Clone(s.tab.lanes[k])
	}
	return v
}

// Claim is Store.Claim for the jobs of the view's account alone.
func (v *View) Claim(ctx context.Context, n int) (jobs []store.Job, waiting bool, err error) {
	return v.claim(ctx, n, &v.last, v.lanes)
}

// Accounts returns the accounts the jobs name, in the order the input first
// names them, "" standing for the jobs that name none; nil when no job names
// one.
func (s *Store) Accounts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tab.namesAccounts() {
		return nil
	}
	var out []string
	seen := map[uint32]bool{}
	for i := range s.tab.in {
		if a := s.tab.in[i].account; !seen[a] {
			seen[a] = true
			out = append(out, s.tab.strs[a])
		}
	}
	return out
}
