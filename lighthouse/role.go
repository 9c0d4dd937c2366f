package lighthouse

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// Role bounds for STS AssumeRole (more-apis.md §1e).
const (
	// DefaultRoleDuration is how long a role's temporary key lasts unless
	// Role.Duration says otherwise; it is STS's own default.
	DefaultRoleDuration = 2 * time.Hour
	// MaxRoleDuration is the longest STS grants.
	MaxRoleDuration = 12 * time.Hour
	// DefaultRoleSessionPrefix starts the session name of a Role that names
	// none; the Unix time follows, so CloudAudit can tell runs apart.
	DefaultRoleSessionPrefix = "batchreset-"
)

// roleSessionNamePattern is STS's rule for RoleSessionName.
var roleSessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,128}$`)

// Role is a CAM role to assume through STS AssumeRole. The zero value
// assumes no role.
type Role struct {
	// ARN names the role: qcs::cam::uin/<uin>:roleName/<name> or
	// qcs::cam::uin/<uin>:role/<id>.
	ARN string
	// SessionName names the session in CloudAudit: 2–128 characters of
	// [A-Za-z0-9_+=,.@-]. Default DefaultRoleSessionPrefix and the Unix
	// time.
	SessionName string
	// Duration is how long each temporary key lasts, whole seconds from 1s
	// to MaxRoleDuration. Default DefaultRoleDuration.
	Duration time.Duration
	// STSEndpoint is STS's base URL, "https://host" or "http://host:port".
	// Default: derived from the Client's Endpoint like every other service
	// (see Config.Endpoint), so that an emulator endpoint serves STS too.
	STSEndpoint string
}

// String describes the role for the start banner.
func (r Role) String() string {
	return "role " + r.ARN + " via STS"
}

// withDefaults returns r with its defaults filled in, or an error naming
// the field STS would refuse.
func (r Role) withDefaults(now time.Time) (Role, error) {
	if r.SessionName == "" {
		r.SessionName = DefaultRoleSessionPrefix + strconv.FormatInt(now.Unix(), 10)
	}
	if !roleSessionNamePattern.MatchString(r.SessionName) {
		return r, fmt.Errorf("role session name %q: want 2-128 characters of letters, digits and _+=,.@-", r.SessionName)
	}
	if r.Duration == 0 {
		r.Duration = DefaultRoleDuration
	}
	if r.Duration < time.Second || r.Duration > MaxRoleDuration || r.Duration%time.Second != 0 {
		return r, fmt.Errorf("role duration %v: want whole seconds from 1s to %v", r.Duration, MaxRoleDuration)
	}
	return r, nil
}

// Refresh timing of a role's temporary key.
const (
	// roleRefreshMargin is how long before expiry a key is replaced, at
	// most: a request signed just before must still arrive in time, and the
	// API accepts a timestamp up to 5 minutes old.
	roleRefreshMargin = 5 * time.Minute
	// roleRetryAfter spaces attempts to refresh a key that still works
	// after a refresh failed, so that a failing STS is not asked on every
	// call.
	roleRetryAfter = 10 * time.Second
)

// roleKey is the current temporary key of a Role. It is the credential the
// SDK signs with (common.CredentialIface); call refreshes it first, with
// the call's context, because the SDK asks for a key without one.
type roleKey struct {
	client *Client
	role   Role

	mu         sync.Mutex
	key        Credential
	expires    time.Time     // when key stops working
	refreshAt  time.Time     // when to replace key
	refreshing chan struct{} // closed when the refresh in flight ends; nil if none
}

// GetSecretId, GetSecretKey, GetToken and GetCredential return the current
// key, for the SDK's signer.
func (k *roleKey) GetSecretId() string  { id, _, _ := k.GetCredential(); return id }
func (k *roleKey) GetSecretKey() string { _, key, _ := k.GetCredential(); return key }
func (k *roleKey) GetToken() string     { _, _, token := k.GetCredential(); return token }

func (k *roleKey) GetCredential() (secretID, secretKey, token string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.key.SecretID, k.key.SecretKey, k.key.Token
}

// current returns the key to sign with, assuming the role first when there
// is no key or it is due for replacement. Concurrent callers wait for one
// AssumeRole. A failed refresh is an error only once the old key has
// expired.
func (k *roleKey) current(ctx context.Context) (Credential, error) {
	for {
		k.mu.Lock()
		now := k.client.now()
		if k.key.SecretID != "" && now.Before(k.refreshAt) {
			key := k.key
			k.mu.Unlock()
			return key, nil
		}
		if wait := k.refreshing; wait != nil {
			k.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Credential{}, context.Cause(ctx)
			}
		}
		done := make(chan struct{})
		k.refreshing = done
		k.mu.Unlock()

		key, expires, err := k.client.assumeRole(ctx, k.role)

		k.mu.Lock()
		k.refreshing = nil
		close(done)
		now = k.client.now()
		if err == nil {
			k.key, k.expires = key, expires
			k.refreshAt = expires.Add(-min(roleRefreshMargin, expires.Sub(now)/3))
			k.mu.Unlock()
			return key, nil
		}
		if k.key.SecretID != "" && now.Before(k.expires) {
			k.refreshAt = now.Add(roleRetryAfter)
			key := k.key
			k.mu.Unlock()
			return key, nil
		}
		k.mu.Unlock()
		return Credential{}, err
	}
}

// expire makes the next call assume the role again, unless used has been
// replaced already. The key stays in place for calls being signed now: an
// empty one would fail them as unauthenticated, a fatal error.
func (k *roleKey) expire(used Credential) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key.SecretID == used.SecretID && k.key.Token == used.Token {
		k.refreshAt = time.Time{}
	}
}

type assumeRoleRequest struct {
	RoleArn         string `json:"RoleArn"`
	RoleSessionName string `json:"RoleSessionName"`
	DurationSeconds int64  `json:"DurationSeconds"`
}

type assumeRoleResponse struct {
	meta
	Credentials struct {
		Token        string `json:"Token"`
		TmpSecretID  string `json:"TmpSecretId"`
		TmpSecretKey string `json:"TmpSecretKey"`
	} `json:"Credentials"`
	ExpiredTime int64  `json:"ExpiredTime"` // Unix seconds
	Expiration  string `json:"Expiration"`  // ISO 8601
}

// stsRegion is the region the SDK's role providers name in AssumeRole.
const stsRegion = "ap-guangzhou"

// assumeRole asks STS for a temporary key of role, signed with the
// long-term key, and returns it with the time it stops working: the
// earlier of STS's ExpiredTime and the local clock plus the duration, so
// that a skewed clock does not keep a key past its end.
//
// API docs: https://www.tencentcloud.com/document/product/1150/49456
func (c *Client) assumeRole(ctx context.Context, role Role) (Credential, time.Time, error) {
	sent := c.now()
	req := assumeRoleRequest{RoleArn: role.ARN, RoleSessionName: role.SessionName, DurationSeconds: int64(role.Duration / time.Second)}
	var resp assumeRoleResponse
	if err := c.call(ctx, serviceSTS, stsRegion, ActionAssumeRole, req, &resp); err != nil {
		return Credential{}, time.Time{}, err
	}
	cr := resp.Credentials
	if cr.TmpSecretID == "" || cr.TmpSecretKey == "" || cr.Token == "" {
		return Credential{}, time.Time{}, &APIError{Action: ActionAssumeRole, Code: CodeParseJSONError, Message: "response has no temporary key", RequestID: resp.RequestID, Class: ClassRetryable}
	}
	expires := sent.Add(role.Duration)
	stsExpires := time.Unix(resp.ExpiredTime, 0)
	if resp.ExpiredTime == 0 {
		t, err := time.Parse(time.RFC3339, resp.Expiration)
		if err != nil {
			return Credential{}, time.Time{}, &APIError{Action: ActionAssumeRole, Code: CodeParseJSONError, Message: "response has no expiry", RequestID: resp.RequestID, Class: ClassRetryable, Err: err}
		}
		stsExpires = t
	}
	if stsExpires.Before(expires) {
		expires = stsExpires
	}
	if !expires.After(c.now()) {
		// Only a local clock far ahead of STS's gets here.
		return Credential{}, time.Time{}, &APIError{Action: ActionAssumeRole, Code: CodeCredentialError, Message: fmt.Sprintf("temporary key expired on arrival (ExpiredTime %s): check the local clock", stsExpires.UTC().Format(time.RFC3339)), RequestID: resp.RequestID, Class: ClassFatal}
	}
	return Credential{SecretID: cr.TmpSecretID, SecretKey: cr.TmpSecretKey, Token: cr.Token}, expires, nil
}

// CurrentCredential returns the key the Client signs its calls with:
// Config.Credential, or with a Role the role's temporary key, assuming the
// role first if it has not been yet or the key is due for replacement. Call
// it at start to fail before any work when the role cannot be assumed, and
// to show the temporary key's masked ID. It fails as an *APIError.
func (c *Client) CurrentCredential(ctx context.Context) (Credential, error) {
	if c.role == nil {
		id, key, token := c.key.GetCredential()
		return Credential{SecretID: id, SecretKey: key, Token: token}, nil
	}
	key, err := c.role.current(ctx)
	if err != nil {
		return Credential{}, roleError(ActionAssumeRole, err)
	}
	return key, nil
}
