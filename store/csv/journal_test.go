package csv

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
)

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()

	cst := time.FixedZone("CST", 8*3600)
	jobs := []store.Job{
		{InstanceID: "lhins-aaaaaaaa", Status: store.StatusPending},
		{
			ID: 12, Run: "run-1", InstanceID: "lhins-aaaaaaaa", BlueprintID: "lhbp-bbbbbbbb", Region: "ap-guangzhou",
			Status: store.StatusFailed, RequestID: "6f1c0a9e-1b7d-4c1e-9a3f-000000000000", PrevRequestID: "prev",
			ErrorCode: "FailedOperation", ErrorMessage: "busy: \"x\" <y> & z\n\ttab \u2028 é \U0001F600",
			Attempts: 3, NotBefore: time.Date(2025, 1, 2, 3, 4, 5, 6, cst), IntentAt: time.Unix(1, 0),
			SubmittedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), FinishedAt: time.Now(), Fence: -7,
		},
		{InstanceID: "lhins-aaaaaaaa", Status: store.StatusUnknown, ErrorMessage: "bad \xff utf-8"},
	}
	for _, want := range jobs {
		line, err := encodeRecord(&want)
		if err != nil {
			t.Fatalf("encodeRecord(%+v) = %v", want, err)
		}
		got, err := decodeRecord(line[:len(line)-1])
		if err != nil {
			t.Fatalf("decodeRecord(%s) = %v", line, err)
		}
		if strings.Contains(want.ErrorMessage, "\xff") {
			want.ErrorMessage = strings.ToValidUTF8(want.ErrorMessage, "\uFFFD")
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("decodeRecord(encodeRecord()) mismatch (-want +got):\n%s", diff)
		}
	}
}

// encodeRecord returns j as a version-1 journal line, as the previous
// journal format wrote each Save.
func encodeRecord(j *store.Job) ([]byte, error) {
	b, err := json.Marshal(record{
		ID:                   j.ID,
		Run:                  j.Run,
		InstanceID:           j.InstanceID,
		BlueprintID:          j.BlueprintID,
		Region:               j.Region,
		KeyIDs:               strings.Join(j.KeyIDs, store.KeyIDSeparator),
		AutoGeneratePassword: j.AutoGeneratePassword,
		Status:               j.Status,
		RequestID:            j.RequestID,
		PrevRequestID:        j.PrevRequestID,
		ErrorCode:            j.ErrorCode,
		ErrorMessage:         j.ErrorMessage,
		Attempts:             j.Attempts,
		NotBefore:            formatNano(j.NotBefore),
		IntentAt:             formatNano(j.IntentAt),
		SubmittedAt:          formatNano(j.SubmittedAt),
		FinishedAt:           formatNano(j.FinishedAt),
		Fence:                j.Fence,
	})
	if err != nil {
		return nil, err
	}
	if len(b) >= maxJournalLine {
		return nil, fmt.Errorf("record of %d bytes exceeds the journal's %d", len(b), maxJournalLine)
	}
	return append(b, '\n'), nil
}

// TestDeltaRoundTrip encodes changes between jobs and decodes them back,
// through the fast parser and through encoding/json alike.
func TestDeltaRoundTrip(t *testing.T) {
	t.Parallel()
	started := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	base := store.Job{ID: 2, InstanceID: "lhins-aaaaaaaa", Region: "ap-guangzhou", Status: store.StatusPending}
	steps := []store.Job{base, base, base, base, base}
	steps[1].Status, steps[1].Attempts, steps[1].IntentAt = store.StatusSubmitting, 1, started.Add(time.Second+5)
	steps[1].HookPhase = store.HookDrained
	steps[1].NotBefore, steps[1].Fence = started.Add(-time.Hour), 9
	steps[2] = steps[1]
	steps[2].Status, steps[2].RequestID, steps[2].NotBefore = store.StatusSubmitted, "6f1c0a9e-1b7d-4c1e-9a3f-000000000000", time.Time{}
	steps[3] = steps[2]
	steps[3].Status, steps[3].ErrorCode, steps[3].ErrorMessage = store.StatusFailed, "E", "a \"quoted\"\nline"
	steps[3].FinishedAt = started.Add(time.Minute)
	steps[4] = steps[3]
	steps[4].HookPhase = store.HookDone
	for k := 1; k < len(steps); k++ {
		line := appendDelta(nil, 0, &steps[k-1], &steps[k], started, false)
		line = line[:len(line)-1]
		d, err := decodeDelta(line)
		if err != nil {
			t.Fatalf("decodeDelta(%s) = %v", line, err)
		}
		var viaJSON delta
		if err := viaJSON.parseJSON(line); err != nil {
			t.Fatalf("parseJSON(%s) = %v", line, err)
		}
		if d != viaJSON {
			t.Errorf("decodeDelta(%s) = %+v, parseJSON = %+v", line, d, viaJSON)
		}
		got := steps[k-1]
		if err := d.apply(&got, base, started); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(steps[k], got); diff != "" {
			t.Errorf("step %d: apply(decodeDelta(%s)) mismatch (-want +got):\n%s", k, line, diff)
		}
	}
	for _, bad := range []string{`{"n":1,"s":"done"}`, `{"s":"failed"}`, `{"n":1,"x":1}`, `{"n":1,"a":"1"}`, `{"n":1,"z":2}`, `{"n":1,"h":"drainedd"}`} {
		d, err := decodeDelta([]byte(bad))
		if err == nil {
			j := base
			err = d.apply(&j, base, started)
		}
		if err == nil {
			t.Errorf("decodeDelta(%s) and apply = nil error, want one", bad)
		}
	}
}
