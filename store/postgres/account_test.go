package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
)

// TestAccountQueue: each account's Queue claims the jobs of its account
// alone, and waiting speaks of those alone; Count breaks the run down by
// account.
func TestAccountQueue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	jobs := makeJobs(0, 9)
	for i := range jobs {
		jobs[i].Account = []string{"a", "b", ""}[i%3]
	}
	if _, err := tb.store.Import(ctx, "r1", jobs, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"a", "b", ""} {
		q := tb.store.AccountQueue("r1", a, "runner-"+a, time.Minute)
		got, waiting, err := q.Claim(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || waiting {
			t.Errorf("AccountQueue(%q).Claim(10) = %d jobs, waiting %t; want 3, false", a, len(got), waiting)
		}
		for _, j := range got {
			if j.Account != a {
				t.Errorf("AccountQueue(%q).Claim() gave %s of account %q", a, j.InstanceID, j.Account)
			}
		}
	}
	c, err := tb.store.Count(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.AccountCount{
		{Account: "a", Jobs: 3, Unfinished: 3, Regions: []string{jobs[0].Region}, Totals: store.Totals{store.StatusPending: 3}},
		{Account: "b", Jobs: 3, Unfinished: 3, Regions: []string{jobs[0].Region}, Totals: store.Totals{store.StatusPending: 3}},
		{Account: "", Jobs: 3, Unfinished: 3, Regions: []string{jobs[0].Region}, Totals: store.Totals{store.StatusPending: 3}},
	}
	if diff := cmp.Diff(want, c.Accounts); diff != "" {
		t.Errorf("Count().Accounts (-want +got):\n%s", diff)
	}
}

func TestImportRefusesBadAccount(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	jobs := makeJobs(0, 1)
	jobs[0].Account = "Team A"
	_, err := tb.store.Import(t.Context(), "r1", jobs, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "account: account name") {
		t.Errorf("Import(account %q) = %v, want an error naming the account", jobs[0].Account, err)
	}
}

// TestRecordAccounts: the first runner's account definitions are the run's.
func TestRecordAccounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 1)
	first := map[string]string{"a": "profile:team-a", "b": "role:qcs::cam::uin/100000000002:roleName/reset"}
	for _, defs := range []map[string]string{first, {"a": "profile:other"}} {
		got, err := tb.store.RecordAccounts(ctx, "r1", defs)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("RecordAccounts(%v) (-want +got):\n%s", defs, diff)
		}
	}
	got, err := tb.store.Accounts(ctx, "r1")
	if err != nil || !cmp.Equal(first, got) {
		t.Errorf("Accounts() = %v, %v; want %v", got, err, first)
	}
}
