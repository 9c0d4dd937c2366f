package lighthouse

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkDescribeInstances measures one DescribeInstances call for 100
// instances against a local server that answers with a prepared body: the
// client's own cost (signing, sending, decoding), plus a loopback round trip.
func BenchmarkDescribeInstances(b *testing.B) {
	var set []map[string]any
	var ids []string
	for i := range MaxIDsPerCall {
		id := fmt.Sprintf("lhins-%08d", i)
		ids = append(ids, id)
		set = append(set, map[string]any{
			"InstanceId": id, "BlueprintId": "lhbp-5e8807lo", "BundleId": "bundle_bw_small1_1",
			"Zone": "ap-guangzhou-3", "InstanceName": "web-" + id, "CPU": 2, "Memory": 4,
			"OsName": "Ubuntu Server 22.04 LTS 64bit", "Platform": "UBUNTU", "PlatformType": "LINUX_UNIX",
			"SystemDisk":       map[string]any{"DiskType": "CLOUD_PREMIUM", "DiskSize": 60, "DiskId": "lhdisk-gayq6kyd"},
			"PrivateAddresses": []string{"10.0.0.5"}, "PublicAddresses": []string{"170.106.15.201"},
			"LoginSettings": map[string]any{"KeyIds": []string{"lhkp-q4d2x8dl"}},
			"Tags":          []map[string]string{{"Key": "env", "Value": "prod"}},
			"InstanceState": "RUNNING", "LatestOperation": "ResetInstance", "LatestOperationState": "SUCCESS",
			"LatestOperationRequestId": "6b9a6dac-888a-4b4d-9739-0d0b66cbfa88", "CreatedTime": "2020-04-28T03:46:09Z",
		})
	}
	body, err := json.Marshal(map[string]any{"Response": map[string]any{"TotalCount": len(set), "InstanceSet": set, "RequestId": "r"}})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, http.StatusOK, body)
	}))
	b.Cleanup(ts.Close)
	c, err := New(Config{Endpoint: ts.URL, Credential: Credential{SecretID: testSecretID, SecretKey: testSecretKey}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.CloseIdleConnections)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := c.DescribeInstances(b.Context(), testRegion, ids)
		if err != nil || len(got) != len(ids) {
			b.Fatalf("DescribeInstances = %d instances, %v", len(got), err)
		}
	}
}
