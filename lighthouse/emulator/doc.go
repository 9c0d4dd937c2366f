// Package emulator is an in-memory, wire-compatible emulator of the Tencent
// Cloud APIs batchreset uses, all on one listener: Lighthouse (2020-03-24)
// ResetInstance, DescribeInstances, DescribeBlueprints,
// DescribeResetInstanceBlueprints, DescribeRegions and DescribeKeyPairs; STS
// (2018-08-13) AssumeRole; Tag (2018-08-13) GetResources; and TAT
// (2020-10-28) DescribeAutomationAgentStatus, RunCommand and
// DescribeInvocationTasks. The demo, the end-to-end tests and the benchmarks
// run against it.
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
// A call names its service by the first label of its Host (sts.…, tag.…,
// tat.…, lighthouse.…), else by its credential scope (the Go SDK signs the
// service name whatever the endpoint), else by its action, which is unique
// across the four services. An action of another service than the one named
// is InvalidAction; each service checks its own X-TC-Version
// (NoSuchVersion). Lighthouse calls other than DescribeRegions and TAT calls
// need X-TC-Region; STS, Tag and DescribeRegions ignore it.
//
// # Credentials
//
// Config.Credentials are the long-term keys. STS AssumeRole, signed with any
// valid key, hands out a temporary SecretId, SecretKey and Token for a role
// of Config.Roles (ResourceNotFound.RoleNotFound otherwise;
// InvalidParameter.ResouceError for a malformed ARN,
// InvalidParameter.ParamError for a bad RoleSessionName or a non-positive
// DurationSeconds, InvalidParameter.OverTimeError past 43200), valid for
// DurationSeconds (default 7200) or Config.CredentialLifetime, with
// ExpiredTime (Unix seconds) and Expiration (ISO 8601 UTC). Every service
// accepts them with the token in X-TC-Token; a missing, wrong or expired
// token, or a token sent with a long-term key, is AuthFailure.TokenFailure
// (reference §2.5 step 6), checked after the signature.
// Stats.AssumedRoles records each call, without key or token.
//
// # Accounts
//
// Config describes one account (Config.UIN, Credentials, Users, Roles and
// the fleet); Config.Accounts adds more, each with its own UIN, keys,
// sub-users, roles, instances, key pairs and custom images. Everything
// else (rate limits, reset and command behaviour, faults, the clock) is
// the service's and applies to every account. A call acts in one account,
// found from its verified signature before the rate limit and the action
// run: a long-term key's own, or for a temporary key the account of the
// role AssumeRole handed it out for. Any account's key may assume any account's role (each
// account trusts every other), and an ARN of no account is RoleNotFound.
// Instances, key pairs, PRIVATE and SHARED blueprints and TAT tasks of
// another account do not exist for a call: a reset of another account's
// instance is ResourceNotFound.InstanceIdNotFound, as for any unknown ID,
// and changes nothing. Public blueprints are every account's; one
// configured in several accounts must be configured the same. Instance,
// key pair, SecretId and role IDs are unique across accounts, and New
// names the account (accounts[i]) of a configuration error. Each account
// has its own rate-limit windows. Stats.ByAccount counts each account's
// calls; each ResetRecord names the Account owning the instance and the
// account whose key SignedBy the call, and each InvocationRecord its
// Account.
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
// Parameters follow the SDK models: a parameter the action does not have is
// UnknownParameter (ResetInstance has Containers, and LoginConfiguration
// unless Config.IntlSite, as the international site lacks it), a missing
// required one MissingParameter, malformed JSON and a value of the
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
// (InvalidParameterValue.BlueprintIdMalformed), the form of Containers
// (each with a ContainerImage and a valid RestartPolicy) and of
// LoginConfiguration (KeyIds at most 5 and distinct:
// InvalidParameterValue.LimitExceeded, Duplicated; Password with KeyIds or
// with AutoGeneratePassword YES:
// InvalidParameterValue.InvalidParameterCombination; neither a password,
// keys nor YES: MissingParameter), the instance exists
// (ResourceNotFound.InstanceIdNotFound), a game-portal instance keeps its
// image (InvalidParameter.GamePortalInstanceOnlySupportCurrentBlueprint),
// the blueprint exists
// (ResourceNotFound.BlueprintIdNotFound), it is NORMAL
// (ResourceUnavailable.BlueprintUnavailable), its PlatformType is the
// instance's (InvalidParameterValue.NotAllowToChangePlatformType), the
// instance has its required disk and memory
// (InvalidParameterValue.BlueprintConfigNotMatch), Containers go to a DOCKER
// image (UnsupportedOperation.BlueprintTypeNotSupportOperation), the key
// pairs are the region's (ResourceNotFound.KeyPairNotFound) and the
// instance not Windows (InvalidParameterValue.InvalidParameterCombination),
// the password follows the rules (8-30 characters on LINUX_UNIX, 12-30 on
// WINDOWS, three of lower, upper, digit and ()`~!@#$%^&*-+=_|{}[]:;'<>,.?/,
// no leading /: InvalidParameterValue.InvalidPassword), the image allows
// AutoGeneratePassword YES
// (UnsupportedOperation.OperationNotSupportAutoGeneratePassword), the
// instance is RUNNING
// or STOPPED (UnsupportedOperation.InvalidInstanceState) and its latest
// operation is not OPERATING
// (UnsupportedOperation.LatestOperationUnfinished). Without BlueprintId the
// installed image is reinstalled. An accepted reset makes the instance's
// latest operation ResetInstance, OPERATING, with the call's RequestId and
// start time; after a duration drawn from Config.ResetDuration it is
// SUCCESS (BlueprintId, OsName and Platform become the target's and the
// instance RUNNING, and LoginConfiguration's KeyIds the instance's
// LoginSettings.KeyIds) or FAILED (nothing changes). Stats.Resets and
// Stats.ResetLog record it; the ledger keeps the key IDs and whether a
// password was set, never the password, which is checked and dropped.
//
// DescribeInstances lists instances by InstanceIds or, without them, the
// region's whole fleet in configuration order, filtered by the documented
// names (more-apis §1a): instance-name, private-ip-address,
// public-ip-address, zone, instance-state and bundle-id match exactly;
// tag-key an instance with a tag of one of the keys, tag-value one with a
// tag of one of the values, tag:<key> one whose tag <key> has one of the
// values. There is no instance-id filter
// (InvalidParameter.InvalidFilterNotSupportedName, as for any unknown
// name); a malformed IP
// is InvalidParameterValue.InvalidIpFormat, a malformed zone InvalidZone, a
// name over 60 characters InstanceNameTooLong. Results are paged by Offset
// and Limit (default 20, at most 100) with TotalCount.
// DescribeKeyPairs lists the region's Config.KeyPairs (KeyIds or Filters
// key-id, key-name by substring, tag-*; at most 5 values) with the
// instances bound to each. DescribeRegions lists the documented regions and
// any configured one.
//
// Tag GetResources scans the account's tagged instances of every region in
// configuration order as qcs::lighthouse:<region>:uin/<UIN>:instance/<id>,
// with their tags: TagFilters (at most 6, ANDed; TagValue at most 10, ORed; no values
// means the key with any value), ResourceList (at most 10 names; all
// matches, MaxResults ignored), MaxResults (default 50, at most 200) and an
// opaque PaginationToken, empty on the last page.
//
// # TAT
//
// DescribeAutomationAgentStatus (InstanceIds at most 100, or Filters
// agent-status, environment, instance-id) shows each instance's agent:
// Online with a current LastHeartbeatTime while the instance is RUNNING;
// Offline from a reset's start until Config.AgentOnlineAfter past its end,
// and for good when the reset lost the agent (Config.AgentLostInstances,
// Config.AgentLossRate); Offline while the instance is not RUNNING.
// RunCommand takes base64 Content (at most 64 KB:
// InvalidParameterValue.CommandContentInvalid), InstanceIds (1 to 200), a
// CommandType and a Timeout of 1 to 86400 s (default 60), refuses unknown
// instances (ResourceNotFound.InstanceNotFound), ones not RUNNING
// (ResourceUnavailable.InstanceStateNotRunning) and Offline agents
// (ResourceUnavailable.AgentStatusNotOnline), and starts one task per
// instance. A task is RUNNING for Config.CommandDuration, then SUCCESS (exit
// 0), FAILED (exit 1: Config.CommandFailInstances, CommandFailureRate) or,
// at its Timeout, TIMEOUT (Config.CommandTimeoutInstances,
// CommandTimeoutRate, or a duration past the Timeout). Its output comes
// from Config.CommandOutputFunc, truncated to 24 KB with the rest counted
// in Dropped. DescribeInvocationTasks (InvocationTaskIds at most 100, or
// Filters invocation-id, invocation-task-id, instance-id, command-id; paged)
// shows them, Output base64 unless HideOutput is true (the default). TAT
// errors use TAT's codes: InvalidParameterValue.InvalidFilter,
// InvalidParameterValue.Range, InvalidParameter.ConflictParameter.
// Stats.Invocations records each invocation with its decoded script.
// DescribeBlueprints and DescribeResetInstanceBlueprints list the region's
// blueprints the same way; the latter computes IsResettable and
// NonResettableMessage from ResetInstance's blueprint rules.
//
// # Rate limits
//
// Each action has its own limit in each account (Config.RateLimits, by
// default the documented ones DefaultRateLimits lists: ResetInstance 10,
// DescribeInstances 100, DescribeBlueprints 10,
// DescribeResetInstanceBlueprints 20, DescribeRegions 10, DescribeKeyPairs
// 100, AssumeRole 600, GetResources 20, DescribeAutomationAgentStatus 60,
// RunCommand and DescribeInvocationTasks 20 per second), enforced in fixed
// windows of one Unix second of arrival by the emulator's clock. A call over
// the limit is answered RequestLimitExceeded and not executed. Rate limiting happens
// after authentication and the action and version checks, as a gateway
// that limits per account and action must: unauthenticated calls and
// unknown actions do not use the budget. Stats counts arrivals per window
// exactly, including rejected calls, over every account (Stats.Actions)
// and by account (Stats.ByAccount).
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
//     gets LatestOperationUnfinished. Instances given StateFor stay in
//     their State (STOPPING, STARTING, REBOOTING…) that long, with the
//     matching operation OPERATING, then settle in StateThen; a reset
//     meanwhile gets InvalidInstanceState.
//   - Key pairs bound before a reset without LoginConfiguration stay bound
//     (undocumented, more-apis §1b); a reset with a password binds none.
//   - A malformed key pair ID in LoginConfiguration is KeyPairNotFound, the
//     only key code ResetInstance documents; DescribeKeyPairs answers
//     InvalidParameterValue.KeyPairIdMalformed.
//   - A TIMEOUT task has ExitCode -1; TAT does not document one.
//   - Config.Generate and Config.Fleet add a generated fleet (tags by
//     share, FleetOptions.Tags), and FleetJobs lists it as jobs (store/csv
//     writes them as a jobs CSV).
//   - LatestOperationStartedTime (a China-site field) is returned, in the
//     API's ISO 8601 UTC format.
//   - Derived fields (UUID, disk ID, addresses, creation time) are a
//     function of the instance ID, so output is stable across runs.
//
// State is computed from the clock when asked (an operation is OPERATING
// until its end time), so no timers run and a fleet of 100,000 instances
// costs memory only. Config.Now can be a fake clock that a test moves
// forward.
package emulator
