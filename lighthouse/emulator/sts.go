package emulator

import (
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"regexp"
	"strconv"
	"time"
)

// STS facts (more-apis §1e; STS AssumeRole page and SDK models).
const (
	// defaultUIN is the account UIN when Config.UIN is empty.
	defaultUIN = "100000000001"
	// defaultRoleName names the one role an account has when Config.Roles
	// is nil.
	defaultRoleName = "emulator"
	// AssumeRole's DurationSeconds: default and maximum.
	defaultSessionSeconds = 7200
	maxSessionSeconds     = 43200
)

var (
	// roleARNPattern accepts the documented RoleArn forms:
	// qcs::cam::uin/<uin>:roleName/<name>, qcs::cam::uin/<uin>:role/<id>
	// and the service-role forms below role/.
	roleARNPattern     = regexp.MustCompile(`^qcs::cam::uin/[0-9]+:(roleName/[\w+=,.@-]+|role/[\w+=,.@/-]+)$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,128}$`)
	uinPattern         = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// tempCredential is a key pair AssumeRole handed out.
type tempCredential struct {
	key, token string
	expires    time.Time
	roleARN    string   // the role assumed
	acct       *account // the role's account, where the key acts
	assumer    string   // the UIN of the key that assumed it
}

// AssumedRole records one AssumeRole call that handed out credentials. It
// holds no secret: the temporary SecretKey and Token are never recorded.
type AssumedRole struct {
	// RoleARN and SessionName are as the call gave them.
	RoleARN, SessionName string
	// TmpSecretID is the temporary SecretId handed out.
	TmpSecretID string
	// Expires is when the credentials stop working.
	Expires time.Time
}

// tempCredential returns the temporary credential id, or nil.
func (s *Server) tempCredential(id string) *tempCredential {
	s.tempMu.RLock()
	defer s.tempMu.RUnlock()
	return s.temp[id]
}

// checkToken checks the X-TC-Token of a call signed with temp (nil for a
// permanent key) at now.
func checkToken(temp *tempCredential, token string, now time.Time) *apiError {
	switch {
	case temp == nil && token == "":
		return nil
	case temp == nil:
		return errorf("AuthFailure.TokenFailure", "The token is invalid: a permanent SecretId takes no token.")
	case token == "":
		return errorf("AuthFailure.TokenFailure", "The token is missing: temporary credentials need X-TC-Token.")
	case !hmac.Equal([]byte(token), []byte(temp.token)):
		return errorf("AuthFailure.TokenFailure", "The token is invalid for this SecretId.")
	case !now.Before(temp.expires):
		return errorf("AuthFailure.TokenFailure", "The token expired at %s.", formatTime(temp.expires))
	}
	return nil
}

type assumeRoleResponse struct {
	Credentials struct {
		Token        string `json:"Token"`
		TmpSecretID  string `json:"TmpSecretId"`
		TmpSecretKey string `json:"TmpSecretKey"`
	} `json:"Credentials"`
	ExpiredTime int64  `json:"ExpiredTime"`
	Expiration  string `json:"Expiration"`
	RequestID   string `json:"RequestId"`
}

// AssumeRole (https://www.tencentcloud.com/document/product/1150/49456).

func (s *Server) prepareAssumeRole(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("RoleArn", "RoleSessionName", "DurationSeconds", "Policy", "ExternalId", "Tags", "SourceIdentity"); e != nil {
		return nil, nil, e
	}
	arn, ok, e := p.str("RoleArn")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		return nil, nil, missing("RoleArn")
	}
	session, ok, e := p.str("RoleSessionName")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		return nil, nil, missing("RoleSessionName")
	}
	seconds, ok, e := p.integer("DurationSeconds")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		seconds = defaultSessionSeconds
	}
	for _, name := range []string{"Policy", "ExternalId", "SourceIdentity"} {
		if _, _, e := p.str(name); e != nil {
			return nil, nil, e
		}
	}
	switch {
	case !sessionNamePattern.MatchString(session):
		return nil, nil, errorf("InvalidParameter.ParamError", "RoleSessionName must be 2 to 128 characters of [\\w+=,.@-].")
	case seconds > maxSessionSeconds:
		return nil, nil, errorf("InvalidParameter.OverTimeError", "DurationSeconds %d exceeds the maximum of %d.", seconds, maxSessionSeconds)
	case seconds < 1:
		return nil, nil, errorf("InvalidParameter.ParamError", "DurationSeconds must be positive.")
	case !roleARNPattern.MatchString(arn):
		return nil, nil, errorf("InvalidParameter.ResouceError", "The RoleArn `%s` is malformed.", arn)
	}
	return nil, func() answer { return s.assumeRole(c, arn, session, seconds) }, nil
}

// assumeRole hands out a key acting in the account of role arn, whichever
// account's key asks: every account trusts every other.
func (s *Server) assumeRole(c *call, arn, session string, seconds int) answer {
	acct := s.roles[arn]
	if acct == nil {
		return answer{err: errorf("ResourceNotFound.RoleNotFound", "The role `%s` does not exist.", arn)}
	}
	lifetime := time.Duration(seconds) * time.Second
	if s.cfg.credentialLifetime > 0 {
		lifetime = s.cfg.credentialLifetime
	}
	expires := c.now.Add(lifetime).Truncate(time.Second)
	var r assumeRoleResponse
	r.Credentials.TmpSecretID = "AKID" + crand.Text()
	r.Credentials.TmpSecretKey = crand.Text()
	r.Credentials.Token = crand.Text() + crand.Text() + crand.Text()
	r.ExpiredTime, r.Expiration, r.RequestID = expires.Unix(), formatTime(expires), c.requestID

	s.tempMu.Lock()
	defer s.tempMu.Unlock()
	s.temp[r.Credentials.TmpSecretID] = &tempCredential{key: r.Credentials.TmpSecretKey, token: r.Credentials.Token, expires: expires,
		roleARN: arn, acct: acct, assumer: c.acct.callerUIN(c.secretID)}
	s.assumed = append(s.assumed, AssumedRole{RoleARN: arn, SessionName: session, TmpSecretID: r.Credentials.TmpSecretID, Expires: expires})
	return answer{body: r}
}

type getCallerIdentityResponse struct {
	Arn         string `json:"Arn"`
	AccountID   string `json:"AccountId"`
	UserID      string `json:"UserId"`
	PrincipalID string `json:"PrincipalId"`
	Type        string `json:"Type"`
	RequestID   string `json:"RequestId"`
}

// GetCallerIdentity (https://www.tencentcloud.com/document/product/1150/49453).

func (s *Server) prepareGetCallerIdentity(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only(); e != nil {
		return nil, nil, e
	}
	return nil, func() answer { return s.getCallerIdentity(c) }, nil
}

// getCallerIdentity answers as the documented examples do: a permanent key
// is its sub-user (Config.Users) or the root account; a role session is
// the role, named by a stable role ID, with the session in UserId and the
// assuming key's UIN in PrincipalId.
func (s *Server) getCallerIdentity(c *call) answer {
	r := getCallerIdentityResponse{AccountID: c.acct.uin, RequestID: c.requestID}
	if temp := s.tempCredential(c.secretID); temp != nil {
		roleID := roleID(temp.roleARN)
		var session string
		s.tempMu.RLock()
		for _, a := range s.assumed {
			if a.TmpSecretID == c.secretID {
				session = a.SessionName
			}
		}
		s.tempMu.RUnlock()
		r.Type, r.UserID, r.PrincipalID = "CAMRole", roleID+":"+session, temp.assumer
		r.Arn = "qcs::sts:" + c.acct.uin + ":assumed-role/" + roleID
		return answer{body: r}
	}
	uin := c.acct.callerUIN(c.secretID)
	r.Type, r.UserID, r.PrincipalID = "CAMUser", uin, uin
	r.Arn = "qcs::cam::uin/" + c.acct.uin + ":uin/" + uin
	return answer{body: r}
}

// roleID returns a stable numeric role ID for a role ARN, as CAM's are.
func roleID(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return "4611686" + strconv.FormatUint(binary.BigEndian.Uint64(sum[:8])%1e11, 10)
}
