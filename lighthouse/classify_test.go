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

// referenceCodes lists every code of lighthouse-api.md §8 with its class for
// ResetInstance and for a Describe action.
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
	{"InvalidParameterValue.InvalidPassword", F, F},
	{"InvalidParameterValue.LimitExceeded", F, F},
	{"InvalidParameterValue.NotAllowToChangePlatformType", P, P},
	{"InvalidParameterValue.OutOfRange", F, F},
	{"InvalidParameterValue.TooLong", F, F},
	{"OperationDenied.InstanceCreating", W, W},
	{"OperationDenied.InstanceOperationInProgress", W, W},
	{"ResourceNotFound.BlueprintIdNotFound", F, F},
	{"ResourceNotFound.InstanceIdNotFound", P, P},
	{"ResourceNotFound.InstanceNotFound", P, P},
	{"ResourceNotFound.KeyPairNotFound", F, F},
	{"ResourceUnavailable.BlueprintUnavailable", P, P},
	{"UnauthorizedOperation.MFANotFound", F, F},
	{"UnauthorizedOperation.NoPermission", F, F},
	{"UnsupportedOperation.InvalidInstanceState", P, P},
	{"UnsupportedOperation.LatestOperationUnfinished", W, W},
	{"UnsupportedOperation.SystemBusy", R, R},

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
		for _, action := range []string{ActionDescribeInstances, ActionDescribeBlueprints, ActionDescribeResetInstanceBlueprints} {
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

func TestClassifyFallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code            string
		reset, describe Class
	}{
		{"RequestLimitExceeded.NewLimit", R, R},
		{"AuthFailure.Something", F, F},
		{"UnauthorizedOperation.Something", F, F},
		{"ResourceUnavailable.Something", R, R},
		{"ResourceNotFound.Something", P, P},
		{"UnsupportedOperation.Something", P, P},
		{"ResourceInUse.Something", W, W},
		{"InternalError.Something", A, R},
		{"FailedOperation.Something", A, R},
		{"InvalidParameterValue.Something", F, F},
		{"InvalidParameterCombination", F, F},
		{"MissingParameterX.Y", F, F},
		{"UnknownParameterX", F, F},
		{"OperationDenied.Something", A, R},
		{"ClientError.Something", A, R},
		{"SomethingNew", A, R},
		{"", A, R},
	}
	for _, tt := range tests {
		if got := Classify(ActionResetInstance, tt.code); got != tt.reset {
			t.Errorf("Classify(ResetInstance, %q) = %v, want %v", tt.code, got, tt.reset)
		}
		if got := Classify(ActionDescribeInstances, tt.code); got != tt.describe {
			t.Errorf("Classify(DescribeInstances, %q) = %v, want %v", tt.code, got, tt.describe)
		}
	}
}
