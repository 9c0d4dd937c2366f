// Package emulator is an in-memory, wire-compatible emulator of the Tencent
// Cloud Lighthouse API (version 2020-03-24) for the calls batchreset makes:
// ResetInstance, DescribeInstances, DescribeBlueprints and
// DescribeResetInstanceBlueprints. The demo, the end-to-end tests and the
// benchmarks run against it.
//
// It follows the documented protocol (shared/reference/lighthouse-api.md),
// not what batchreset's client happens to send, so any client that talks to
// Lighthouse, such as the official SDKs, works against it:
//
//	emu, err := emulator.New(emulator.Config{
//		Credentials: map[string]string{"AKIDexample": "secret"},
//		Instances:   instances,
//		Blueprints:  blueprints,
//	})
//	srv := httptest.NewServer(emu) // point the SDK at srv's host:port with scheme http
//
// # Protocol
//
// Calls are POST / with a JSON body (Content-Type application/json, with or
// without a charset) signed with TC3-HMAC-SHA256. The signature is checked
// as the reference's server recipe says: the Authorization header is parsed
// (AuthFailure.InvalidAuthorization), the SecretId looked up
// (AuthFailure.SecretIdNotFound), the timestamp must be within 300 s of the
// emulator's clock (AuthFailure.SignatureExpire), the credential scope date
// must be the timestamp's UTC date, the canonical headers are rebuilt from
// SignedHeaders (which must include content-type and host) over the raw
// body (or UNSIGNED-PAYLOAD when X-TC-Content-SHA256 says so), and the
// signature is compared in constant time (AuthFailure.SignatureFailure).
// Because the SDKs differ, the host is tried as received and then without
// its port (the Node SDKs sign the bare host name), header values are tried
// lowercased (as documented) and as sent (as the Go SDK signs them), and
// any credential-scope service is accepted (the Node SDKs take it from the
// endpoint's first label).
//
// Every API error is answered with HTTP 200 and the envelope
// {"Response":{"Error":{"Code","Message"},"RequestId"}}; success with
// {"Response":{...,"RequestId"}}. RequestIds are random lowercase UUID v4s.
// Only FaultUnavailable answers a 5xx (an HTML page, as a gateway would).
// A panic is recovered and answered InternalError.
//
// A call is checked in this order: method (UnsupportedProtocol), body size
// (RequestSizeLimitExceeded), signature, content type, X-TC-Action
// (MissingParameter, InvalidAction), X-TC-Version (NoSuchVersion), rate
// limit (RequestLimitExceeded), X-TC-Region (MissingParameter, or
// UnsupportedRegion for a region neither documented nor configured),
// parameters, injected faults, and the action's own rules.
//
// Parameters follow the international site's models: a parameter the
// action does not have is UnknownParameter (so the China-only
// LoginConfiguration and Containers of ResetInstance are rejected), a
// missing required one MissingParameter, malformed JSON and a value of the
// wrong JSON type InvalidParameter, a well-typed but unacceptable value
// InvalidParameterValue.* (OutOfRange, Negative, LimitExceeded for more
// than 100 IDs, Duplicated, InstanceIdMalformed, BlueprintIdMalformed), and
// InstanceIds or BlueprintIds together with Filters
// InvalidParameter.ParameterConflict. A JSON null counts as absent.
//
// # Actions
//
// The region (X-TC-Region) selects the fleet slice: an instance in another
// region does not exist for the call. Blueprints with no region exist in
// every region.
//
// ResetInstance checks, in order: InstanceId format
// (InvalidParameterValue.InstanceIdMalformed), BlueprintId format
// (InvalidParameterValue.BlueprintIdMalformed), the instance exists
// (ResourceNotFound.InstanceIdNotFound), the blueprint exists
// (ResourceNotFound.BlueprintIdNotFound), it is NORMAL
// (ResourceUnavailable.BlueprintUnavailable), its PlatformType is the
// instance's (InvalidParameterValue.NotAllowToChangePlatformType), the
// instance has its required disk and memory
// (InvalidParameterValue.BlueprintConfigNotMatch), the instance is RUNNING
// or STOPPED (UnsupportedOperation.InvalidInstanceState) and its latest
// operation is not OPERATING
// (UnsupportedOperation.LatestOperationUnfinished). Without BlueprintId the
// installed image is reinstalled. An accepted reset makes the instance's
// latest operation ResetInstance, OPERATING, with the call's RequestId and
// start time; after a duration drawn from Config.ResetDuration it is
// SUCCESS (BlueprintId, OsName and Platform become the target's and the
// instance RUNNING) or FAILED (nothing changes). Stats.Resets records it.
//
// DescribeInstances lists instances by InstanceIds or, without them, the
// region's whole fleet in configuration order, filtered by instance-name,
// private-ip-address, public-ip-address, zone, instance-state and the tag
// filters (emulated instances have no tags, so those match nothing), and
// paged by Offset and Limit (default 20, at most 100) with TotalCount.
// DescribeBlueprints and DescribeResetInstanceBlueprints list the region's
// blueprints the same way; the latter computes IsResettable and
// NonResettableMessage from ResetInstance's blueprint rules.
//
// # Rate limits
//
// Each action has its own limit (Config.RateLimits, by default the
// documented 10, 100, 10 and 20 per second), enforced in fixed windows of
// one Unix second of arrival by the emulator's clock. A call over the limit
// is answered RequestLimitExceeded and not executed. Rate limiting happens
// after authentication and the action and version checks, as a gateway
// that limits per account and action must: unauthenticated calls and
// unknown actions do not use the budget. Stats counts arrivals per window
// exactly, including rejected calls.
//
// # Faults
//
// Config.Faults, SetFaults and PUT /_emulator/faults inject failures per
// action, per instance or at random: an error envelope, a throttle, an HTML
// 5xx (all before the action runs), extra latency, or a connection dropped
// after the action ran, which leaves the client unable to tell whether its
// reset was accepted. GET /_emulator/stats serves Stats as JSON. These
// paths need no signature: the emulator is for local use.
//
// # Deliberate choices
//
// Where the service is undocumented the emulator picks the stricter or
// more informative behaviour, so that a client that works against it works
// against the real service too:
//
//   - DescribeInstances with InstanceIds omits unknown (well-formed) IDs
//     from InstanceSet rather than failing the whole call, and pages the
//     result like any other (Limit still defaults to 20).
//   - InstanceState does not change while a reset runs (there is no
//     resetting state); a successful reset leaves the instance RUNNING,
//     even one that was STOPPED.
//   - Config.VisibilityLag reproduces a backend that registers the reset
//     late: for that long DescribeInstances still shows the previous
//     operation, while ResetInstance already refuses a second reset.
//   - Instances given BusyFor run RebootInstances, OPERATING, from the
//     emulator's creation, with InstanceState unchanged; a reset meanwhile
//     gets LatestOperationUnfinished.
//   - LatestOperationStartedTime (a China-site field) is returned, in the
//     API's ISO 8601 UTC format.
//   - Derived fields (UUID, disk ID, addresses, creation time) are a
//     function of the instance ID, so output is stable across runs.
//   - X-TC-Token is ignored: the emulator has no temporary credentials.
//
// State is computed from the clock when asked (an operation is OPERATING
// until its end time), so no timers run and a fleet of 100,000 instances
// costs memory only. Config.Now can be a fake clock that a test moves
// forward.
package emulator
