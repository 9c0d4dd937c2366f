package lighthouse

import "testing"

// The reference's class letters.
const (
	R = ClassRetryable
	W = ClassBusy
	P = ClassPermanent
	F = ClassFatal
	A = ClassAmbiguous
)

// referenceCodes lists every code of lighthouse-api.md §8 and more-apis.md
// §1b with its class for ResetInstance and for a read-only action.
var referenceCodes = []struct {
	code            string
	reset, describe Class
}{
	// §8.1 ResetInstance.
	{"FailedOperation", A, R},
	{"FailedOperation.DescribeInstanceStatus", R, R},
	{"FailedOperation.InstanceOperationFailed", A, R},
	{"InternalError.DescribeInstanceStatus", R, R},
	{"InternalError.InvalidCommandNotFound", R, R},
	{"InvalidParameterValue.BlueprintConfigNotMatch", P, P},
	{"InvalidParameterValue.BlueprintId", P, P},
	{"InvalidParameterValue.BlueprintIdMalformed", F, F},
	{"InvalidParameterValue.Duplicated", F, F},
	{"InvalidParameterValue.InstanceIdMalformed", P, P},
	{"InvalidParameterValue.InvalidParameterCombination", F, F},
	{"InvalidParameterValue.InvalidPassword", P, P},
	{"InvalidParameterValue.LimitExceeded", F, F},
	{"InvalidParameterValue.NotAllowToChangePlatformType", P, P},
	{"InvalidParameterValue.OutOfRange", F, F},
	{"InvalidParameterValue.TooLong", F, F},
	{"OperationDenied.InstanceCreating", W, W},
	{"OperationDenied.InstanceOperationInProgress", W, W},
	{"ResourceNotFound.BlueprintIdNotFound", F, F},
	{"ResourceNotFound.InstanceIdNotFound", P, P},
	{"ResourceNotFound.InstanceNotFound", P, P},
	{"ResourceNotFound.KeyPairNotFound", P, P},
	{"ResourceUnavailable.BlueprintUnavailable", P, P},
	{"UnauthorizedOperation.MFANotFound", F, F},
	{"UnauthorizedOperation.NoPermission", F, F},
	{"UnsupportedOperation.InvalidInstanceState", W, W},
	{"UnsupportedOperation.LatestOperationUnfinished", W, W},
	{"UnsupportedOperation.SystemBusy", R, R},

	// more-apis.md §1b and §1c.
	{"InvalidParameter.GamePortalInstanceOnlySupportCurrentBlueprint", P, P},
	{"UnsupportedOperation.BlueprintTypeNotSupportOperation", P, P},
	{"UnsupportedOperation.InstanceDisplayAreaNotSupportOperation", P, P},
	{"UnsupportedOperation.OperationNotSupportAutoGeneratePassword", P, P},
	{"UnsupportedOperation.DiskBusy", W, W},

	// §8.2 DescribeInstances.
	{"InvalidParameter.FilterValueLimitExceeded", F, F},
	{"InvalidParameter.InvalidFilter", F, F},
	{"InvalidParameter.InvalidFilterInvalidKey", F, F},
	{"InvalidParameter.InvalidFilterInvalidNameNotStr", F, F},
	{"InvalidParameter.InvalidFilterInvalidValuesNotList", F, F},
	{"InvalidParameter.InvalidFilterNotDict", F, F},
	{"InvalidParameter.InvalidFilterNotSupportedName", F, F},
	{"InvalidParameter.ParameterConflict", F, F},
	{"InvalidParameterValue.InstanceNameTooLong", F, F},
	{"InvalidParameterValue.InvalidIpFormat", F, F},
	{"InvalidParameterValue.InvalidZone", F, F},
	{"InvalidParameterValue.Negative", F, F},
	{"UnauthorizedOperation.TokenInvalid", F, F},
	// §8.2 DescribeBlueprints.
	{"FailedOperation.DescribeBlueprintsFailed", R, R},
	{"InvalidParameterValue.InvalidBlueprintPlatformType", F, F},
	{"InvalidParameterValue.InvalidBlueprintState", F, F},
	{"InvalidParameterValue.InvalidBlueprintType", F, F},
	{"ResourceNotFound.RoleNotFound", F, F},
	{"ResourceNotFound.SceneIdNotFound", F, F},

	// §8.3 common codes.
	{"ActionOffline", F, F},
	{"InvalidAction", F, F},
	{"NoSuchProduct", F, F},
	{"NoSuchVersion", F, F},
	{"UnsupportedProtocol", F, F},
	{"AuthFailure", F, F},
	{"AuthFailure.InvalidAuthorization", F, F},
	{"AuthFailure.InvalidSecretId", F, F},
	{"AuthFailure.SecretIdNotFound", F, F},
	{"AuthFailure.SignatureFailure", F, F},
	{"AuthFailure.MFAFailure", F, F},
	{"AuthFailure.UnauthorizedOperation", F, F},
	{"AuthFailure.SignatureExpire", F, F},
	{"AuthFailure.TokenFailure", F, F},
	{"AuthFailure.InvalidRegion", F, F},
	{"UnauthorizedOperation", F, F},
	{"IpInBlacklist", F, F},
	{"IpNotInWhitelist", F, F},
	{"UnsupportedRegion", F, F},
	{"RequestLimitExceeded", R, R},
	{"RequestLimitExceeded.UinLimitExceeded", R, R},
	{"RequestLimitExceeded.IPLimitExceeded", R, R},
	{"RequestLimitExceeded.GlobalRegionUinLimitExceeded", R, R},
	{"InternalError", A, R},
	{"ServiceUnavailable", A, R},
	{"ResourceInUse", W, W},
	{"ResourceInsufficient", R, R},
	{"ResourceUnavailable", R, R},
	{"ResourceNotFound", P, P},
	{"UnsupportedOperation", P, P},
	{"InvalidParameter", F, F},
	{"InvalidParameterValue", F, F},
	{"MissingParameter", F, F},
	{"UnknownParameter", F, F},
	{"InvalidRequest", F, F},
	{"RequestSizeLimitExceeded", F, F},
	{"LimitExceeded", F, F},
	{"DryRunOperation", F, F},
	{"ResponseSizeLimitExceeded", F, F},

	// Client-side codes.
	{"ClientError.NetworkError", A, R},
	{"ClientError.HttpStatusCodeError", A, R},
	{"ClientError.ParseJsonError", A, R},
	{"ClientError.IOError", A, R},
	{"ClientError.CredentialError", F, F},
	{"ClientError.INIError", F, F},
	{"ClientError.CircuitBreakerError", F, F},
	{"ClientError.InvalidParameter", F, F},
}

func TestClassifyReferenceCodes(t *testing.T) {
	t.Parallel()
	listed := make(map[string]bool)
	for _, tt := range referenceCodes {
		listed[tt.code] = true
		// A code missing from the table could still get the right class by
		// falling back; require it to be listed.
		if _, ok := classes[tt.code]; !ok {
			t.Errorf("code %s is not in the classification table", tt.code)
		}
		if got := Classify(ActionResetInstance, tt.code); got != tt.reset {
			t.Errorf("Classify(ResetInstance, %s) = %v, want %v", tt.code, got, tt.reset)
		}
		if got := Classify(ActionRunCommand, tt.code); got != tt.reset {
			t.Errorf("Classify(RunCommand, %s) = %v, want %v", tt.code, got, tt.reset)
		}
		for _, action := range []string{ActionDescribeInstances, ActionDescribeBlueprints, ActionDescribeResetInstanceBlueprints,
			ActionDescribeKeyPairs, ActionDescribeRegions, ActionGetResources, ActionDescribeAutomationAgentStatus,
			ActionDescribeInvocationTasks, ActionAssumeRole} {
			if got := Classify(action, tt.code); got != tt.describe {
				t.Errorf("Classify(%s, %s) = %v, want %v", action, tt.code, got, tt.describe)
			}
		}
	}
	for code := range classes {
		if !listed[code] {
			t.Errorf("code %s is classified but not tested", code)
		}
	}
}

// TestClassifyFallback checks codes the reference does not list: an action
// that changes something takes them as ambiguous unless their family is
// refused before the API acts; a read-only action takes its family's class.
func TestClassifyFallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code            string
		reset, describe Class
	}{
		{"RequestLimitExceeded.NewLimit", R, R},
		{"AuthFailure.Something", F, F},
		{"UnauthorizedOperation.Something", F, F},
		{"ResourceInUse.Something", W, W},
		{"InvalidParameterValue.Something", F, F},
		{"InvalidParameterCombination", F, F},
		{"MissingParameterX.Y", F, F},
		{"UnknownParameterX", F, F},
		// Families the API may return after it acted, for all we know.
		{"ResourceUnavailable.Something", A, R},
		{"ResourceInsufficient.Something", A, R},
		{"ResourceNotFound.Something", A, P},
		{"UnsupportedOperation.Something", A, P},
		{"LimitExceeded.Something", A, F},
		{"InternalError.Something", A, R},
		{"FailedOperation.Something", A, R},
		{"OperationDenied.Something", A, R},
		{"ClientError.Something", A, R},
		{"SomethingNew", A, R},
		{"", A, R},
	}
	for _, tt := range tests {
		for _, action := range []string{ActionResetInstance, ActionRunCommand} {
			if got := Classify(action, tt.code); got != tt.reset {
				t.Errorf("Classify(%s, %q) = %v, want %v", action, tt.code, got, tt.reset)
			}
		}
		for _, action := range []string{ActionDescribeInstances, ActionGetResources, ActionAssumeRole} {
			if got := Classify(action, tt.code); got != tt.describe {
				t.Errorf("Classify(%s, %q) = %v, want %v", action, tt.code, got, tt.describe)
			}
		}
	}
}

func TestTransitional(t *testing.T) {
	t.Parallel()
	// Every documented InstanceState (lighthouse-api.md §5.1).
	want := map[string]bool{
		"PENDING": true, "STARTING": true, "STOPPING": true, "REBOOTING": true,
		"ENTER_RESCUE_MODE": true, "EXIT_RESCUE_MODE": true,
		"RUNNING": false, "STOPPED": false, "LAUNCH_FAILED": false, "SHUTDOWN": false,
		"TERMINATING": false, "DELETING": false, "FREEZING": false, "RESCUE_MODE": false, "": false,
	}
	for state, w := range want {
		if got := Transitional(state); got != w {
			t.Errorf("Transitional(%q) = %v, want %v", state, got, w)
		}
	}
}
