package emulator

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRecover checks that a panic in an action is answered InternalError in
// the normal envelope, with HTTP 200, and counted.
func TestRecover(t *testing.T) {
	t.Parallel()
	s, err := New(Config{
		Credentials: map[string]string{"AKIDtest": "key"},
		Instances:   []Instance{{ID: "lhins-aaaaaaaa", BlueprintID: "lhbp-aaaaaaaa"}},
		Logger:      slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Break the fleet so that DescribeInstances dereferences nil: an
	// impossible state that only a bug could reach.
	s.accounts[0].byRegion[defaultRegion] = []*instance{nil}

	const body = `{}`
	req := httptest.NewRequest(http.MethodPost, "http://lighthouse.emu.test/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-TC-Action", actionDescribeInstances)
	req.Header.Set("X-TC-Version", apiVersion)
	req.Header.Set("X-TC-Region", defaultRegion)
	SignTC3(req, []byte(body), "AKIDtest", "key", time.Now(), "lighthouse.emu.test", "lighthouse")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)

	var env struct {
		Response struct {
			Error     errorBody
			RequestID string `json:"RequestId"`
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("answer %q: %v", w.Body, err)
	}
	if w.Code != http.StatusOK || env.Response.Error.Code != "InternalError" || env.Response.RequestID == "" {
		t.Errorf("answer to a panicking call = %d %s, want 200 with InternalError and a RequestId", w.Code, w.Body)
	}
	if got := s.Stats().Actions[actionDescribeInstances]; got.Calls != 1 || got.Errors != 1 {
		t.Errorf("Stats().Actions[DescribeInstances] = %+v, want 1 call, 1 error", got)
	}
	s.Close() // idempotent
}
