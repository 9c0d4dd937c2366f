package emulator_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// Example serves one instance and resets it with the official SDK's common
// client, signing as it would against the real endpoint.
func Example() {
	emu, err := emulator.New(emulator.Config{
		Credentials: map[string]string{"AKIDexample": "example-secret-key"},
		Instances:   []emulator.Instance{{ID: "lhins-ruy9d2tw", Region: "ap-guangzhou", BlueprintID: "lhbp-5e8807lo"}},
		Blueprints: []emulator.Blueprint{
			{ID: "lhbp-5e8807lo", Platform: "CENTOS", OsName: "CentOS 7.6 64bit"},
			{ID: "lhbp-f1lkcd41", Platform: "UBUNTU", OsName: "Ubuntu Server 22.04 LTS 64bit"},
		},
		ResetDuration: emulator.Duration{Min: time.Hour}, // stays OPERATING while the example runs
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer emu.Close()
	srv := httptest.NewServer(emu)
	defer srv.Close()

	cpf := profile.NewClientProfile()
	cpf.HttpProfile.ReqMethod = "POST"
	cpf.HttpProfile.Scheme = "http"
	cpf.HttpProfile.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	cpf.DisableRegionBreaker = true
	cpf.NetworkFailureMaxRetries = 0
	cpf.RateLimitExceededMaxRetries = 0
	client := common.NewCommonClient(common.NewCredential("AKIDexample", "example-secret-key"), "ap-guangzhou", cpf)

	// call sends action and decodes the envelope's Response into out.
	call := func(action string, params map[string]any, out any) error {
		req := tchttp.NewCommonRequest("lighthouse", "2020-03-24", action)
		if err := req.SetActionParameters(params); err != nil {
			return err
		}
		resp := tchttp.NewCommonResponse()
		if err := client.Send(req, resp); err != nil {
			return err
		}
		var env struct{ Response json.RawMessage }
		if err := json.Unmarshal(resp.GetBody(), &env); err != nil {
			return err
		}
		return json.Unmarshal(env.Response, out)
	}
	type instance struct {
		InstanceID               string `json:"InstanceId"`
		BlueprintID              string `json:"BlueprintId"`
		InstanceState            string
		LatestOperation          string
		LatestOperationState     string
		LatestOperationRequestID string `json:"LatestOperationRequestId"`
	}
	show := func() instance {
		var r struct{ InstanceSet []instance }
		if err := call("DescribeInstances", map[string]any{"InstanceIds": []string{"lhins-ruy9d2tw"}}, &r); err != nil {
			fmt.Println(err)
			return instance{}
		}
		in := r.InstanceSet[0]
		fmt.Println(in.InstanceID, in.BlueprintID, in.InstanceState, in.LatestOperation, in.LatestOperationState)
		return in
	}

	show()
	var reset struct {
		RequestID string `json:"RequestId"`
	}
	if err := call("ResetInstance", map[string]any{"InstanceId": "lhins-ruy9d2tw", "BlueprintId": "lhbp-f1lkcd41"}, &reset); err != nil {
		fmt.Println(err)
		return
	}
	in := show()
	fmt.Println("operation is ours:", in.LatestOperationRequestID == reset.RequestID)

	err = call("ResetInstance", map[string]any{"InstanceId": "lhins-ruy9d2tw", "BlueprintId": "lhbp-f1lkcd41"}, &reset)
	var apiErr *tcerr.TencentCloudSDKError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Code)
	}
	fmt.Println("resets applied:", len(emu.Stats().Resets["lhins-ruy9d2tw"]))
	// Output:
	// lhins-ruy9d2tw lhbp-5e8807lo RUNNING StartInstances SUCCESS
	// lhins-ruy9d2tw lhbp-5e8807lo RUNNING ResetInstance OPERATING
	// operation is ours: true
	// UnsupportedOperation.LatestOperationUnfinished
	// resets applied: 1
}
