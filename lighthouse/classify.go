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
// Describe*, §8.3 common and client-side codes), with its class as seen by
// ResetInstance. Where the reference says "A, then P" or "R then F", the
// first letter is kept: the runner caps the retries. ClassAmbiguous becomes
// ClassRetryable for read-only actions (see Classify).
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
	"InvalidParameterValue.InvalidPassword":              ClassFatal,
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
	"ResourceNotFound.KeyPairNotFound":            ClassFatal,
	// The reference distinguishes SYNCING (wait) from the rest (fatal); the
	// runner's blueprint pre-check settles that, so one instance is enough.
	"ResourceUnavailable.BlueprintUnavailable": ClassPermanent,
	"UnauthorizedOperation.MFANotFound":        ClassFatal,
	"UnauthorizedOperation.NoPermission":       ClassFatal,
	// Transitional states are rechecked by the runner with DescribeInstances.
	"UnsupportedOperation.InvalidInstanceState":      ClassPermanent,
	"UnsupportedOperation.LatestOperationUnfinished": ClassBusy,
	"UnsupportedOperation.SystemBusy":                ClassRetryable,

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
	"UnauthorizedOperation.TokenInvalid":                 ClassFatal,
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
	"AuthFailure.TokenFailure":                          ClassFatal,
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
// lighthouse-api.md §8. For a read-only action (Describe*) nothing is
// ambiguous: what would be ClassAmbiguous for ResetInstance is
// ClassRetryable. A code not in the reference takes the class of its prefix
// (the part before the first '.') when that is a common code; otherwise
// InvalidParameter*, MissingParameter* and UnknownParameter* codes are
// ClassFatal, and anything else is ClassAmbiguous (ClassRetryable for reads),
// since an unknown failure of a reset may have reset the instance.
func Classify(action, code string) Class {
	c, ok := classes[code]
	if !ok {
		prefix, _, _ := strings.Cut(code, ".")
		c, ok = classes[prefix]
	}
	if !ok {
		switch {
		case strings.HasPrefix(code, "InvalidParameter"),
			strings.HasPrefix(code, "MissingParameter"),
			strings.HasPrefix(code, "UnknownParameter"):
			c = ClassFatal
		default:
			c = ClassAmbiguous
		}
	}
	if c == ClassAmbiguous && readOnly(action) {
		return ClassRetryable
	}
	return c
}

// readOnly reports whether action only reads, so that resending it is safe.
func readOnly(action string) bool {
	return strings.HasPrefix(action, "Describe")
}
