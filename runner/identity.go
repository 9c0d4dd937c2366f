package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/batchreset/batchreset/lighthouse"
)

// Identity is who a limit belongs to: the API server a command calls (the
// normalised endpoint, lighthouse.NormalizeEndpoint) and the principal
// whose limits its calls are charged to (see
// lighthouse.CallerIdentity.RateLimitOwner). The documented limit is per
// action, access region and sub-account (more-apis.md §1f): two processes
// of one Identity share each action's limit, on one host through
// HostLimits, across hosts through the database.
//
// Account is the account the calls act in, whose instances they reach (STS's
// AccountId: the same for the account's root key, each of its sub-users
// and each session of a role in it); "" when STS did not say.
type Identity struct {
	Endpoint string
	Owner    string
	Account  string
}

// Key names the Identity in file and bucket names: a hash, so that neither
// the endpoint nor the owner needs escaping.
func (id Identity) Key() string {
	sum := sha256.Sum256([]byte(id.Endpoint + "\x00" + id.Owner))
	return hex.EncodeToString(sum[:8])
}

// HoldsKey names where the runs of the host record which instances they
// hold (store/csv.Registry). A limit is a principal's, but an instance is
// its account's, whoever reaches it: the account's root key, any of its
// sub-users, any session of any role in it, through any endpoint. So every
// Identity of one account shares one record of holds, and a run by a role
// sees the holds of a run by a key of the same account. Without an account
// (STS refused to say) the record is the Identity's own.
func (id Identity) HoldsKey() string {
	if id.Account == "" {
		return id.Key()
	}
	sum := sha256.Sum256([]byte("account\x00" + id.Account))
	return "account-" + hex.EncodeToString(sum[:8])
}

// String describes the Identity for banners and logs.
func (id Identity) String() string { return id.Owner + " at " + id.Endpoint }

// CallerIdentity asks STS, through the action's limiter, who the calls of
// this Cloud are charged to.
func (c *Cloud) CallerIdentity(ctx context.Context) (lighthouse.CallerIdentity, error) {
	id, err := retryRejected(ctx, c, lighthouse.ActionGetCallerIdentity, func() (lighthouse.CallerIdentity, error) {
		return c.api.GetCallerIdentity(ctx)
	})
	if err != nil {
		return id, fmt.Errorf("get caller identity: %w", err)
	}
	return id, nil
}

// ResolveIdentity returns the Identity of the calls c makes to endpoint
// (normalised): the rate-limit owner STS's GetCallerIdentity names (see
// lighthouse.CallerIdentity.RateLimitOwner), asked once.
//
// When STS refuses the question for want of permission, the Identity falls
// back to the key itself (key, a SecretId and role ARN, hashed), and log
// says so with the consequence: processes that use another key of the same
// sub-account are then not spaced with this one's, and together they can
// exceed the sub-account's limit. That is the safer of the two choices: the
// key's identity never shares less than processes of one key need, and
// refusing to run would stop every operator whose policy denies STS while
// protecting only those who run two keys of one sub-account at once, whom
// the warning tells. Any other failure (the API unreachable, a malformed
// answer) is returned: the command cannot reach the API anyway.
func ResolveIdentity(ctx context.Context, c *Cloud, endpoint, key string, log *slog.Logger) (Identity, error) {
	caller, err := c.CallerIdentity(ctx)
	if err == nil {
		owner := caller.RateLimitOwner()
		if owner == "" {
			return Identity{}, errors.New("get caller identity: the answer names no caller (no Arn)")
		}
		return Identity{Endpoint: endpoint, Owner: owner, Account: strings.TrimSpace(caller.AccountID)}, nil
	}
	if !denied(err) {
		return Identity{}, err
	}
	sum := sha256.Sum256([]byte(key))
	id := Identity{Endpoint: endpoint, Owner: "key-" + hex.EncodeToString(sum[:8])}
	log.Warn("STS refused GetCallerIdentity: rate limits and the instances runs hold are shared only with processes using this same key; "+
		"runs with another key of the same sub-account are not spaced with this one and together can exceed its limit, "+
		"and runs with another key or role of the same account do not see which instances this one holds",
		"identity", id, "error", err)
	return id, nil
}

// denied reports whether err is the API refusing a call for want of
// permission.
func denied(err error) bool {
	ae, ok := errors.AsType[*lighthouse.APIError](err)
	if !ok {
		return false
	}
	return strings.HasPrefix(ae.Code, "UnauthorizedOperation") || ae.Code == "AuthFailure.UnauthorizedOperation"
}
