package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
)

func TestTotalsSucceeded(t *testing.T) {
	for _, tc := range []struct {
		totals store.Totals
		want   bool
	}{
		{nil, true},
		{store.Totals{store.StatusSucceeded: 3}, true},
		{store.Totals{store.StatusSucceeded: 3, store.StatusFailed: 0}, true},
		{store.Totals{store.StatusSucceeded: 3, store.StatusUnhealthy: 1}, false},
		{store.Totals{store.StatusSucceeded: 3, store.StatusSkipped: 1}, false},
		{store.Totals{store.StatusPending: 1}, false},
	} {
		if got := tc.totals.Succeeded(); got != tc.want {
			t.Errorf("%v.Succeeded() = %v, want %v", tc.totals, got, tc.want)
		}
	}
}

func TestCountAdd(t *testing.T) {
	var c store.Count
	for _, j := range []struct {
		st       store.Status
		region   string
		instance string
	}{
		{store.StatusSucceeded, "ap-tokyo", "lhins-00000001"},
		{store.StatusPending, "ap-singapore", "lhins-00000002"},
		{store.StatusSubmitted, "ap-beijing", "lhins-00000003"},
		{store.StatusPending, "ap-singapore", "lhins-00000004"},
		{store.StatusPending, "ap-guangzhou", "lhins-00000005"},
		{store.StatusFailed, "ap-seoul", "lhins-00000006"},
	} {
		c.Add(&store.Job{Status: j.st, Region: j.region, InstanceID: j.instance})
	}
	want := store.Count{
		Totals:     store.Totals{store.StatusSucceeded: 1, store.StatusPending: 3, store.StatusSubmitted: 1, store.StatusFailed: 1},
		Jobs:       6,
		Unfinished: 4,
		Regions:    []string{"ap-beijing", "ap-guangzhou", "ap-singapore"},
		Sample:     []string{"lhins-00000002", "lhins-00000003", "lhins-00000004"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Count mismatch (-want +got):\n%s", diff)
	}
}

func TestCountAddAccounts(t *testing.T) {
	var c store.Count
	for _, j := range []store.Job{
		{Status: store.StatusPending, Region: "ap-tokyo", InstanceID: "lhins-00000001"},
		{Status: store.StatusSucceeded, Region: "ap-seoul", InstanceID: "lhins-00000002"},
		{Account: "b", Status: store.StatusPending, Region: "ap-seoul", InstanceID: "lhins-00000003"},
		{Status: store.StatusPending, Region: "ap-beijing", InstanceID: "lhins-00000004"},
		{Account: "b", Status: store.StatusFailed, Region: "ap-tokyo", InstanceID: "lhins-00000005"},
	} {
		c.Add(&j)
	}
	want := []store.AccountCount{
		{Account: "", Jobs: 3, Unfinished: 2, Regions: []string{"ap-beijing", "ap-tokyo"}, Totals: store.Totals{store.StatusPending: 2, store.StatusSucceeded: 1}},
		{Account: "b", Jobs: 2, Unfinished: 1, Regions: []string{"ap-seoul"}, Totals: store.Totals{store.StatusPending: 1, store.StatusFailed: 1}},
	}
	if diff := cmp.Diff(want, c.Accounts); diff != "" {
		t.Errorf("Count.Accounts mismatch (-want +got):\n%s", diff)
	}
}

func TestHookSettingsJSON(t *testing.T) {
	h := store.HookSettings{Before: "exec:/opt/drain.sh", Timeout: 90 * time.Second, Failure: "abandon", Concurrency: 50}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"before_reset":"exec:/opt/drain.sh","failure":"abandon","concurrency":50,"timeout":"1m30s"}`; string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
	var back store.HookSettings
	if err := json.Unmarshal(b, &back); err != nil || back != h {
		t.Errorf("json.Unmarshal = %+v, %v; want %+v", back, err, h)
	}
	if err := json.Unmarshal([]byte(`{"timeout":"soon"}`), &back); err == nil {
		t.Errorf("json.Unmarshal of a malformed timeout: no error")
	}
}
