package lighthouse

import (
	"fmt"
	"strings"
)

// Class says what a failed call means for the runner. Every API error code,
// and every transport failure, maps to exactly one class (see Classify).
type Class int

// Error classes.
const (
	// ClassRetryable: the call was rejected and not executed (throttled,
	// system busy, request never left); sending it again is safe.
	ClassRetryable Class = iota + 1
	// ClassBusy: the instance has an operation in progress, possibly our own
	// earlier reset; reconcile, then retry later.
	ClassBusy
	// ClassPermanent: this instance cannot be reset as asked; record and go on.
	ClassPermanent
	// ClassFatal: nothing in this run can succeed (credentials, permission,
	// configuration, a client bug); stop starting new work.
	ClassFatal
	// ClassAmbiguous: a ResetInstance call may have been accepted (timeout,
	// dropped connection, 5xx, internal error). Never resend before
	// DescribeInstances proves the reset absent.
	ClassAmbiguous
)

// String returns the class's name, as logs and reports print it.
func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "retryable"
	case ClassBusy:
		return "busy"
	case ClassPermanent:
		return "permanent"
	case ClassFatal:
		return "fatal"
	case ClassAmbiguous:
		return "ambiguous"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// APIError is a failed call: an error the API returned in its response
// envelope, or a transport failure given a ClientError.* code.
type APIError struct {
	Action    string // the API action called, e.g. ResetInstance
	Code      string // the API's error code, or a ClientError.* code
	Message   string
	RequestID string // "" when no response was decoded
	Class     Class  // what the failure means; see Classify
	Err       error  // the underlying cause, if any
}

// Error returns "Action: Code: Message (request RequestID)".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Action, e.Code)
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the underlying cause, so that errors.Is sees, for example,
// context.DeadlineExceeded.
func (e *APIError) Unwrap() error { return e.Err }

// Throttled reports whether the call was refused by a rate limit.
func (e *APIError) Throttled() bool {
	return e.Code == "RequestLimitExceeded" || strings.HasPrefix(e.Code, "RequestLimitExceeded.")
}
