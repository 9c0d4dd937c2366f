package csv

import (
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

// FuzzParseFast checks that the fast journal decoder agrees with
// encoding/json on every line it accepts.
func FuzzParseFast(f *testing.F) {
	j := store.Job{
		ID: 2, InstanceID: "lhins-aaaaaaaa", Region: "ap-guangzhou", Status: store.StatusSubmitted,
		RequestID: "r", Attempts: 1, IntentAt: time.Now(), Fence: 3,
	}
	line, _ := encodeRecord(&j)
	f.Add(string(line[:len(line)-1]))
	f.Add(`{"id":1,"instance_id":"a","status":"pending"}`)
	f.Add(`{"id":01,"instance_id":"a"}`)
	f.Add(`{"id":-0,"attempts":9223372036854775808}`)
	f.Add(`{"id":1,"id":2}`)
	f.Add(`{"error_message":"a\"b"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, line string) {
		var fast record
		if !fast.parseFast([]byte(line)) {
			return
		}
		var slow record
		if err := decodeJSON([]byte(line), &slow); err != nil {
			t.Fatalf("parseFast(%q) accepted what encoding/json rejects: %v", line, err)
		}
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Fatalf("parseFast(%q) mismatch (-encoding/json +parseFast):\n%s", line, diff)
		}
	})
}
