package lighthouse

import "strings"

// Client-side codes: the SDK's ClientError.* codes, which this package also
// uses for the transport and decoding failures it detects itself.
const (
	CodeNetworkError        = "ClientError.NetworkError"
	CodeHTTPStatusCodeError = "ClientError.HttpStatusCodeError"
	CodeParseJSONError      = "ClientError.ParseJsonError"
	CodeIOError             = "ClientError.IOError"
	CodeInvalidParameter    = "ClientError.InvalidParameter"
	CodeCredentialError     = "ClientError.CredentialError"
)

// codeTokenFailure is the API's answer to a temporary key's token it no
// longer accepts.
const codeTokenFailure = "AuthFailure.TokenFailure"

// classes holds every code of lighthouse-api.md §8 (§8.1 ResetInstance, §8.2
// Describe*, §8.3 common and client-side codes) and more-apis.md §1b, with
// its class as seen by ResetInstance. Where the reference says "A, then P"
// or "R then F", the first letter is kept: the runner caps the retries.
// ClassAmbiguous becomes ClassRetryable for read-only actions (see
// Classify).
//
// The login-setting codes (a key pair, a password, a generated password)
// are ClassPermanent where the reference proposes F: whether they succeed
// depends on the instance (key pairs belong to one region, Windows takes no
// keys and longer passwords), so one instance's refusal says nothing about
// the next. A whole run misconfigured fails them one by one, within the
// runner's failure budget.
var classes = map[string]Class{
	// §8.1 ResetInstance.
	"FailedOperation":                                    ClassAmbiguous,
	"FailedOperation.DescribeInstanceStatus":             ClassRetryable,
	"FailedOperation.InstanceOperationFailed":            ClassAmbiguous,
	"InternalError.DescribeInstanceStatus":               ClassRetryable,
	"InternalError.InvalidCommandNotFound":               ClassRetryable,
	"InvalidParameterValue.BlueprintConfigNotMatch":      ClassPermanent,
	"InvalidParameterValue.BlueprintId":                  ClassPermanent,
	"InvalidParameterValue.BlueprintIdMalformed":         ClassFatal,
	"InvalidParameterValue.Duplicated":                   ClassFatal,
	"InvalidParameterValue.InstanceIdMalformed":          ClassPermanent,
	"InvalidParameterValue.InvalidParameterCombination":  ClassFatal,
	"InvalidParameterValue.InvalidPassword":              ClassPermanent,
	"InvalidParameterValue.LimitExceeded":                ClassFatal,
	"InvalidParameterValue.NotAllowToChangePlatformType": ClassPermanent,
	"InvalidParameterValue.OutOfRange":                   ClassFatal,
	"InvalidParameterValue.TooLong":                      ClassFatal,
	"OperationDenied.InstanceCreating":                   ClassBusy,
	// It may be our own earlier reset: the runner reconciles.
	"OperationDenied.InstanceOperationInProgress": ClassBusy,
	"ResourceNotFound.BlueprintIdNotFound":        ClassFatal,
	"ResourceNotFound.InstanceIdNotFound":         ClassPermanent,
	"ResourceNotFound.InstanceNotFound":           ClassPermanent,
	"ResourceNotFound.KeyPairNotFound":            ClassPermanent,
	// The reference distinguishes SYNCING (wait) from the rest (fatal); the
	// runner's blueprint pre-check settles that, so one instance is enough.
	"ResourceUnavailable.BlueprintUnavailable": ClassPermanent,
	"UnauthorizedOperation.MFANotFound":        ClassFatal,
	"UnauthorizedOperation.NoPermission":       ClassFatal,
	// The API gives it for transitional states (PENDING, STARTING,
	// STOPPING, REBOOTING, ENTER_RESCUE_MODE, EXIT_RESCUE_MODE), which
	// pass by themselves, as for final ones; the code cannot tell them
	// apart, so it waits: the caller bounds the wait, and DescribeInstances
	// tells which (see Transitional).
	"UnsupportedOperation.InvalidInstanceState":      ClassBusy,
	"UnsupportedOperation.LatestOperationUnfinished": ClassBusy,
	"UnsupportedOperation.SystemBusy":                ClassRetryable,

	// more-apis.md §1b, newer than §8.1.
	"InvalidParameter.GamePortalInstanceOnlySupportCurrentBlueprint": ClassPermanent,
	"UnsupportedOperation.BlueprintTypeNotSupportOperation":          ClassPermanent,
	"UnsupportedOperation.InstanceDisplayAreaNotSupportOperation":    ClassPermanent,
	"UnsupportedOperation.OperationNotSupportAutoGeneratePassword":   ClassPermanent,
	// more-apis.md §1c: the disk is busy with a snapshot.
	"UnsupportedOperation.DiskBusy": ClassBusy,

	// §8.2 DescribeInstances and DescribeBlueprints, beyond the codes above.
	"InvalidParameter.FilterValueLimitExceeded":          ClassFatal,
	"InvalidParameter.InvalidFilter":                     ClassFatal,
	"InvalidParameter.InvalidFilterInvalidKey":           ClassFatal,
	"InvalidParameter.InvalidFilterInvalidNameNotStr":    ClassFatal,
	"InvalidParameter.InvalidFilterInvalidValuesNotList": ClassFatal,
	"InvalidParameter.InvalidFilterNotDict":              ClassFatal,
	"InvalidParameter.InvalidFilterNotSupportedName":     ClassFatal,
	"InvalidParameter.ParameterConflict":                 ClassFatal,
	"InvalidParameterValue.InstanceNameTooLong":          ClassFatal,
	"InvalidParameterValue.InvalidIpFormat":              ClassFatal,
	"InvalidParameterValue.InvalidZone":                  ClassFatal,
	"InvalidParameterValue.Negative":                     ClassFatal,
	// The reference says "refresh credentials once, then F"; nothing here
	// refreshes them.
	"UnauthorizedOperation.TokenInvalid": ClassFatal,
	// The reference says "refresh temporary credentials once, then F"; the
	// Client does the refresh (see Client.call).
	codeTokenFailure: ClassFatal,
	"FailedOperation.DescribeBlueprintsFailed":           ClassRetryable,
	"InvalidParameterValue.InvalidBlueprintPlatformType": ClassFatal,
	"InvalidParameterValue.InvalidBlueprintState":        ClassFatal,
	"InvalidParameterValue.InvalidBlueprintType":         ClassFatal,
	"ResourceNotFound.RoleNotFound":                      ClassFatal,
	"ResourceNotFound.SceneIdNotFound":                   ClassFatal,

	// §8.3 common codes; the bare ones double as prefix fallbacks.
	"ActionOffline":                                     ClassFatal,
	"InvalidAction":                                     ClassFatal,
	"NoSuchProduct":                                     ClassFatal,
	"NoSuchVersion":                                     ClassFatal,
	"UnsupportedProtocol":                               ClassFatal,
	"AuthFailure":                                       ClassFatal,
	"AuthFailure.InvalidAuthorization":                  ClassFatal,
	"AuthFailure.InvalidSecretId":                       ClassFatal,
	"AuthFailure.SecretIdNotFound":                      ClassFatal,
	"AuthFailure.SignatureFailure":                      ClassFatal,
	"AuthFailure.MFAFailure":                            ClassFatal,
	"AuthFailure.UnauthorizedOperation":                 ClassFatal,
	"AuthFailure.SignatureExpire":                       ClassFatal,
	"AuthFailure.InvalidRegion":                         ClassFatal,
	"UnauthorizedOperation":                             ClassFatal,
	"IpInBlacklist":                                     ClassFatal,
	"IpNotInWhitelist":                                  ClassFatal,
	"UnsupportedRegion":                                 ClassFatal,
	"RequestLimitExceeded":                              ClassRetryable,
	"RequestLimitExceeded.UinLimitExceeded":             ClassRetryable,
	"RequestLimitExceeded.IPLimitExceeded":              ClassRetryable,
	"RequestLimitExceeded.GlobalRegionUinLimitExceeded": ClassRetryable,
	"InternalError":                                     ClassAmbiguous,
	"ServiceUnavailable":                                ClassAmbiguous,
	"ResourceInUse":                                     ClassBusy,
	"ResourceInsufficient":                              ClassRetryable,
	"ResourceUnavailable":                               ClassRetryable,
	"ResourceNotFound":                                  ClassPermanent,
	"UnsupportedOperation":                              ClassPermanent,
	"InvalidParameter":                                  ClassFatal,
	"InvalidParameterValue":                             ClassFatal,
	"MissingParameter":                                  ClassFatal,
	"UnknownParameter":                                  ClassFatal,
	"InvalidRequest":                                    ClassFatal,
	"RequestSizeLimitExceeded":                          ClassFatal,
	"LimitExceeded":                                     ClassFatal,
	"DryRunOperation":                                   ClassFatal,
	"ResponseSizeLimitExceeded":                         ClassFatal,

	// Client-side codes from the SDK (§8.3) and this package.
	CodeNetworkError:                  ClassAmbiguous,
	CodeHTTPStatusCodeError:           ClassAmbiguous,
	CodeParseJSONError:                ClassAmbiguous,
	CodeIOError:                       ClassAmbiguous,
	CodeCredentialError:               ClassFatal,
	"ClientError.INIError":            ClassFatal,
	"ClientError.CircuitBreakerError": ClassFatal, // the breaker must stay off
	CodeInvalidParameter:              ClassFatal, // a bad argument: a caller bug
}

// Classify returns the class of an error code returned by action, following
// lighthouse-api.md §8 and more-apis.md §1b. For a read-only action
// (Describe*, GetResources, AssumeRole) nothing is ambiguous: what would be
// ClassAmbiguous is ClassRetryable.
//
// A code not in the table is judged by its prefix (the part before the
// first '.'). For a read-only action it takes the class of its prefix when
// that is a common code; otherwise InvalidParameter*, MissingParameter* and
// UnknownParameter* codes are ClassFatal and anything else ClassRetryable.
// For an action that changes something (ResetInstance, RunCommand), an
// unknown code is never taken to mean the action did not run unless its
// family says so: the API checks signatures and CAM (AuthFailure.*,
// UnauthorizedOperation.*), throttles (RequestLimitExceeded.*) and
// validates parameters (InvalidParameter*, MissingParameter*,
// UnknownParameter*) before acting; ResourceInUse.* waits and reconciles
// first anyway. Any other unknown code is ClassAmbiguous, since an unknown
// failure of a reset may have reset the instance.
func Classify(action, code string) Class {
	c, ok := classes[code]
	if !ok {
		c = classifyUnknown(action, code)
	}
	if c == ClassAmbiguous && readOnly(action) {
		return ClassRetryable
	}
	return c
}

// refusalFamilies are the common codes whose every sub-code the API
// returns before it acts.
var refusalFamilies = map[string]bool{
	"AuthFailure":           true,
	"UnauthorizedOperation": true,
	"RequestLimitExceeded":  true,
	"ResourceInUse":         true,
}

// classifyUnknown classifies a code not in classes.
func classifyUnknown(action, code string) Class {
	prefix, _, _ := strings.Cut(code, ".")
	switch {
	case strings.HasPrefix(code, "InvalidParameter"),
		strings.HasPrefix(code, "MissingParameter"),
		strings.HasPrefix(code, "UnknownParameter"):
		return ClassFatal
	case readOnly(action) || refusalFamilies[prefix]:
		if c, ok := classes[prefix]; ok {
			return c
		}
	}
	return ClassAmbiguous
}

// readOnly reports whether action only reads, so that resending it is safe.
// AssumeRole hands out a new key each time and changes nothing else.
func readOnly(action string) bool {
	return strings.HasPrefix(action, "Describe") || action == ActionGetResources || action == ActionAssumeRole ||
		action == ActionGetCallerIdentity
}

// Values of Instance.InstanceState the instance leaves by itself.
const (
	StatePending         = "PENDING"
	StateStarting        = "STARTING"
	StateStopping        = "STOPPING"
	StateRebooting       = "REBOOTING"
	StateEnterRescueMode = "ENTER_RESCUE_MODE"
	StateExitRescueMode  = "EXIT_RESCUE_MODE"
)

// Transitional reports whether state, an Instance.InstanceState, is one the
// instance leaves by itself, so that a reset refused in it
// (UnsupportedOperation.InvalidInstanceState) is worth waiting for. The
// other states that refuse a reset (SHUTDOWN, TERMINATING, DELETING,
// FREEZING, LAUNCH_FAILED, RESCUE_MODE) last until someone acts.
func Transitional(state string) bool {
	switch state {
	case StatePending, StateStarting, StateStopping, StateRebooting, StateEnterRescueMode, StateExitRescueMode:
		return true
	}
	return false
}
