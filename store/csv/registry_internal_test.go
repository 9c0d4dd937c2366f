package csv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// TestRegistryRewritesInPlace: an entry is written over the old one, never
// truncated, and a shorter entry after a longer one still reads whole.
func TestRegistryRewritesInPlace(t *testing.T) {
	t.Parallel()
	reg, err := OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	long := "/" + strings.Repeat("d", 3000) + "/results.csv.state"
	j := store.Job{InstanceID: "lhins-0000aa01", Status: store.StatusSubmitting}
	if err := reg.update(&j, long, time.Now()); err != nil {
		t.Fatal(err)
	}
	j.Status = store.StatusSucceeded
	if err := reg.update(&j, long, time.Now()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(reg.dir, "01", j.InstanceID)
	read := func() entry {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("entry does not parse: %v\n%q", err, b)
		}
		return e
	}
	if e := read(); e.Run != long || e.InFlight {
		t.Errorf("after the reset: entry of run %.20q…, in flight %v; want the long run, not in flight", e.Run, e.InFlight)
	}
	j.Status = store.StatusSubmitting
	if err := reg.update(&j, "/short/results.csv.state", time.Now()); err != nil {
		t.Fatalf("another run's intent after the first finished: %v", err)
	}
	if e := read(); e.Run != "/short/results.csv.state" || !e.InFlight {
		t.Errorf("entry = %+v, want the short run in flight", e)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < int64(len(long)) {
		t.Errorf("entry file is %v bytes (%v), want it rewritten in place, never truncated", st.Size(), err)
	}
}
