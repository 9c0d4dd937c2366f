package runner_test

import (
	"context"
	"testing"

	"github.com/batchreset/batchreset/store"
)

// TestPrevBlueprintRecorded: every job the run sends records the image its
// instance had before, in the journal (read back by a reopened store) and
// in the database.
func TestPrevBlueprintRecorded(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 6, limit: 50})
			before := b.blueprints(t)
			_, jobs := b.runOn(t, be, nil)
			if be == csvBackend {
				st := b.open(t) // replays the journal
				jobs = st.Jobs()
				st.Close()
			}
			for _, j := range jobs {
				if j.Status != store.StatusSucceeded {
					t.Errorf("%s: %s, want succeeded", j.InstanceID, j.Status)
				}
				if j.PrevBlueprintID == "" || j.PrevBlueprintID != before[j.InstanceID] || j.PrevBlueprintID == j.BlueprintID {
					t.Errorf("%s: PrevBlueprintID = %q, want %q (the image before the reset, not the target %s)",
						j.InstanceID, j.PrevBlueprintID, before[j.InstanceID], j.BlueprintID)
				}
			}
		})
	}
}

// blueprints returns each input instance's blueprint now, as the cloud
// describes it.
func (b *bundle) blueprints(t *testing.T) map[string]string {
	t.Helper()
	byRegion := map[string][]string{}
	for _, j := range b.jobs {
		byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
	}
	out := map[string]string{}
	for region, ids := range byRegion {
		ins, err := b.direct.DescribeInstances(context.Background(), region, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			out[in.InstanceID] = in.BlueprintID
		}
	}
	return out
}
