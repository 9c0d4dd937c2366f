package lighthouse

import (
	"context"
	"strings"
)

// CallerIdentity is who the API sees calling: STS GetCallerIdentity's
// answer for the key the Client signs its calls with (a Role's temporary
// key when there is a Role).
type CallerIdentity struct {
	// AccountID is the root account's UIN.
	AccountID string
	// UserID is the caller: a UIN for an account or sub-user,
	// "roleId:roleSessionName" for a role, "uin:name" for a federated user.
	UserID string
	// PrincipalID is the UIN the key belongs to; for a role, the UIN that
	// assumed it.
	PrincipalID string
	// ARN names the caller: qcs::cam::uin/<root>:uin/<uin> for an account or
	// sub-user, qcs::sts:<root>:assumed-role/<roleId> for a role session.
	ARN string
	// Type is the kind of identity: CAMUser, CAMRole, ….
	Type string
}

// RateLimitOwner returns the principal whose rate limits a call is charged
// to, or "" when the answer names none. The documented limit is per action,
// access region and sub-account (more-apis.md §1f), a root account calling
// directly being its own sub-account. The ARN names exactly that for an
// account or sub-user, whichever of its keys signs: every key of one
// sub-user shares one limit. For a role session the ARN names the role and
// not the session (UserID carries the session name, which changes with
// every run, and PrincipalID the user who assumed the role): sessions of one
// role most likely count against the role's assumed identity, so they share
// one limit, whoever assumed them. That can only group more calls under one
// limit than the API does, never fewer.
func (id CallerIdentity) RateLimitOwner() string {
	return strings.TrimSpace(id.ARN)
}

type getCallerIdentityResponse struct {
	meta
	AccountID   string `json:"AccountId"`
	UserID      string `json:"UserId"`
	PrincipalID string `json:"PrincipalId"`
	ARN         string `json:"Arn"`
	Type        string `json:"Type"`
}

// GetCallerIdentity asks STS who the Client's key belongs to. It is signed
// with the key every Lighthouse call uses (a Role's temporary key, assumed
// first if need be), and sent to STS's host: Role.STSEndpoint when set,
// else the one derived from Config.Endpoint, so that an emulator answers
// it too. It fails as an *APIError.
//
// API docs: https://www.tencentcloud.com/document/product/1150/49453
func (c *Client) GetCallerIdentity(ctx context.Context) (CallerIdentity, error) {
	var resp getCallerIdentityResponse
	if err := c.call(ctx, serviceSTS, stsRegion, ActionGetCallerIdentity, struct{}{}, &resp); err != nil {
		return CallerIdentity{}, err
	}
	return CallerIdentity{AccountID: resp.AccountID, UserID: resp.UserID, PrincipalID: resp.PrincipalID, ARN: resp.ARN, Type: resp.Type}, nil
}
