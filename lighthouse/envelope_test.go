package lighthouse

import (
	"net/http"
	"testing"
)

// TestErrorEnvelopeNotJSONContentType: the SDK looks for an error envelope
// before decoding only in replies not served as application/octet-stream,
// and the client no longer repeats that look (see
// rawResponse.ParseErrorFromHTTPResponse). An error envelope served so must
// still fail the call with the envelope's code, never pass as a reply with
// a RequestId.
func TestErrorEnvelopeNotJSONContentType(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"Response":{"Error":{"Code":"UnsupportedOperation.LatestOperationUnfinished","Message":"busy"},"RequestId":"req-1"}}`))
	})
	want := APIError{Code: "UnsupportedOperation.LatestOperationUnfinished", RequestID: "req-1", Class: ClassBusy}

	id, err := b.client.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
	if id != "" {
		t.Errorf("ResetInstance() = %q, want no RequestId", id)
	}
	checkAPIError(t, err, ActionResetInstance, want, "busy")

	insts, err := b.client.DescribeInstances(t.Context(), testRegion, []string{"lhins-ruy9d2tw"})
	if len(insts) != 0 {
		t.Errorf("DescribeInstances() = %d instances, want none", len(insts))
	}
	checkAPIError(t, err, ActionDescribeInstances, want, "busy")
}
