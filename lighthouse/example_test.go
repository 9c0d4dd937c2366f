package lighthouse_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// Reset an instance and follow the reset through DescribeInstances until the
// operation with our RequestId ends, against the emulator over real HTTP.
func Example() {
	instances, blueprints := emulator.GenerateFleet(1, emulator.FleetOptions{Seed: 1})
	emu, err := emulator.New(emulator.Config{
		Credentials:   map[string]string{"AKIDexample": "example-secret-key"},
		Instances:     instances,
		Blueprints:    blueprints,
		ResetDuration: emulator.Duration{Min: 50 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	defer emu.Close()
	srv := httptest.NewServer(emu)
	defer srv.Close()

	client, err := lighthouse.New(lighthouse.Config{
		Endpoint:   srv.URL,
		Credential: lighthouse.Credential{SecretID: "AKIDexample", SecretKey: "example-secret-key"},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	id, region := instances[0].ID, instances[0].Region
	requestID, err := client.ResetInstance(ctx, region, lighthouse.ResetInstanceRequest{InstanceID: id, BlueprintID: blueprints[0].ID})
	if err != nil {
		panic(err)
	}
	for {
		insts, err := client.DescribeInstances(ctx, region, []string{id})
		if err != nil {
			panic(err)
		}
		in := insts[0]
		if in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationRequestID == requestID &&
			in.LatestOperationState != lighthouse.OperationOperating {
			fmt.Println(in.LatestOperation, in.LatestOperationState, in.BlueprintID == blueprints[0].ID)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Output: ResetInstance SUCCESS true
}
