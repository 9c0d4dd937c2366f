package emulator

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Login settings of ResetInstance (CN SDK models; reference §4, more-apis
// §1b).
const (
	// maxLoginKeys is the most KeyIds a LoginConfiguration takes.
	maxLoginKeys = 5
	// passwordSpecials are the special characters a password may hold.
	passwordSpecials = "()`~!@#$%^&*-+=_|{}[]:;'<>,.?/"
)

var restartPolicyPattern = regexp.MustCompile(`^(no|always|on-failure(:[0-9]+)?)$`)

// login is a checked LoginConfiguration. The password itself is not kept.
type login struct {
	keyIDs      []string
	hasKeys     bool
	passwordSet bool
	// passwordProblem is what is wrong with the password for each platform
	// type, found while it was at hand ("" when it is fine).
	passwordProblem map[string]string
	auto            bool
}

// object returns object parameter name as params; ok is false when it is
// absent.
func (p params) object(name string) (v params, ok bool, e *apiError) {
	raw, ok := p[name]
	if !ok {
		return nil, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil || v == nil {
		return nil, true, wrongType(name, "Object")
	}
	for k, raw := range v {
		if string(raw) == "null" {
			delete(v, k)
		}
	}
	return v, true, nil
}

// loginParam returns the checked LoginConfiguration of p, nil when absent.
// Checks that need the target image (key pairs, password rules) are made
// later by checkLogin.
func loginParam(p params) (*login, *apiError) {
	lc, ok, e := p.object("LoginConfiguration")
	if e != nil || !ok {
		return nil, e
	}
	if e := lc.only("AutoGeneratePassword", "Password", "KeyIds"); e != nil {
		e.Message = "LoginConfiguration: " + e.Message
		return nil, e
	}
	var l login
	auto, hasAuto, e := lc.str("AutoGeneratePassword")
	if e != nil {
		return nil, e
	}
	switch auto {
	case "YES":
		l.auto = true
	case "NO":
	default:
		if hasAuto {
			return nil, errorf("InvalidParameterValue", "LoginConfiguration.AutoGeneratePassword must be YES or NO, not `%s`.", auto)
		}
	}
	password, hasPassword, e := lc.str("Password")
	if e != nil {
		return nil, e
	}
	if l.keyIDs, l.hasKeys, e = lc.strs("KeyIds"); e != nil {
		return nil, e
	}
	switch {
	case len(l.keyIDs) > maxLoginKeys:
		return nil, errorf("InvalidParameterValue.LimitExceeded", "LoginConfiguration.KeyIds has more than %d values.", maxLoginKeys)
	case hasPassword && l.hasKeys:
		return nil, errorf("InvalidParameterValue.InvalidParameterCombination", "LoginConfiguration.Password and KeyIds cannot be used together.")
	case hasPassword && l.auto:
		return nil, errorf("InvalidParameterValue.InvalidParameterCombination", "LoginConfiguration.Password cannot be used with AutoGeneratePassword YES.")
	case !hasPassword && !l.hasKeys && !l.auto:
		return nil, missing("LoginConfiguration.Password")
	}
	for i, id := range l.keyIDs {
		if slices.Contains(l.keyIDs[:i], id) {
			return nil, errorf("InvalidParameterValue.Duplicated", "LoginConfiguration.KeyIds has the duplicate value `%s`.", id)
		}
	}
	if hasPassword {
		l.passwordSet = true
		l.passwordProblem = map[string]string{"LINUX_UNIX": passwordProblem(password, 8), "WINDOWS": passwordProblem(password, 12)}
	}
	return &l, nil
}

// passwordProblem returns why password breaks the documented rules for a
// platform whose passwords need minLen characters, or "". The answer never
// quotes the password.
func passwordProblem(password string, minLen int) string {
	if n := len(password); n < minLen || n > 30 {
		return fmt.Sprintf("it must be %d to 30 characters long", minLen)
	}
	if strings.HasPrefix(password, "/") {
		return "it must not start with /"
	}
	var lower, upper, digit, special bool
	for _, r := range password {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case strings.ContainsRune(passwordSpecials, r):
			special = true
		default:
			return "it may hold only letters, digits and " + passwordSpecials
		}
	}
	classes := 0
	for _, has := range []bool{lower, upper, digit, special} {
		if has {
			classes++
		}
	}
	if classes < 3 {
		return "it must hold at least three of lower-case letters, upper-case letters, digits and special characters"
	}
	return ""
}

// checkLogin checks l (not nil) against the target image and a's key pairs
// of region.
func (a *account) checkLogin(l *login, region string, target *blueprint, platformType string) *apiError {
	for _, id := range l.keyIDs {
		if k := a.keyPairs[id]; k == nil || k.Region != region {
			return errorf("ResourceNotFound.KeyPairNotFound", "The key pair `%s` does not exist.", id)
		}
	}
	if l.hasKeys && platformType == "WINDOWS" {
		return errorf("InvalidParameterValue.InvalidParameterCombination", "Windows instances do not support key pairs.")
	}
	if problem := l.passwordProblem[platformType]; problem != "" {
		return errorf("InvalidParameterValue.InvalidPassword", "The password is invalid: %s.", problem)
	}
	if l.auto && target != nil && target.NoAutoGeneratePassword {
		return errorf("UnsupportedOperation.OperationNotSupportAutoGeneratePassword", "The image `%s` does not support an automatically generated password.", target.ID)
	}
	return nil
}

// containersParam checks the Containers parameter and returns how many it
// holds.
func containersParam(p params) (int, *apiError) {
	raw, ok := p["Containers"]
	if !ok {
		return 0, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return 0, wrongType("Containers", "Array of DockerContainerConfiguration")
	}
	for i, item := range items {
		c, e := params{"c": item}.objectAt("c", fmt.Sprintf("Containers.%d", i))
		if e != nil {
			return 0, e
		}
		if e := c.only("ContainerImage", "ContainerName", "Envs", "PublishPorts", "Volumes", "Command", "RestartPolicy"); e != nil {
			e.Message = fmt.Sprintf("Containers.%d: %s", i, e.Message)
			return 0, e
		}
		image, ok, e := c.str("ContainerImage")
		if e != nil {
			return 0, e
		}
		if !ok || image == "" {
			return 0, missing(fmt.Sprintf("Containers.%d.ContainerImage", i))
		}
		policy, ok, e := c.str("RestartPolicy")
		if e != nil {
			return 0, e
		}
		if ok && !restartPolicyPattern.MatchString(policy) {
			return 0, errorf("InvalidParameterValue", "Containers.%d.RestartPolicy `%s` is not no, on-failure, on-failure:N or always.", i, policy)
		}
		for _, name := range []string{"ContainerName", "Command"} {
			if _, _, e := c.str(name); e != nil {
				return 0, e
			}
		}
	}
	return len(items), nil
}

// objectAt is object for a parameter reported as label.
func (p params) objectAt(name, label string) (params, *apiError) {
	v, _, e := p.object(name)
	if e != nil {
		return nil, wrongType(label, "Object")
	}
	return v, nil
}

// DescribeKeyPairs (https://www.tencentcloud.com/document/api/1103/42480).

type wireKeyPair struct {
	KeyID                 string    `json:"KeyId"`
	KeyName               string    `json:"KeyName"`
	PublicKey             string    `json:"PublicKey"`
	AssociatedInstanceIDs []string  `json:"AssociatedInstanceIds"`
	CreatedTime           string    `json:"CreatedTime"`
	PrivateKey            *string   `json:"PrivateKey"`
	Tags                  []wireTag `json:"Tags"`
}

type describeKeyPairsResponse struct {
	TotalCount int           `json:"TotalCount"`
	KeyPairSet []wireKeyPair `json:"KeyPairSet"`
	RequestID  string        `json:"RequestId"`
}

// keyPairFilters are DescribeKeyPairs' filter names; the key pairs carry no
// tags, so the tag filters match nothing.
var keyPairFilters = []string{"key-id", "key-name", "tag-key", "tag-value", "tag:"}

// maxKeyPairFilterValues is DescribeKeyPairs' limit on values per filter.
const maxKeyPairFilterValues = 5

func (s *Server) prepareDescribeKeyPairs(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("KeyIds", "Offset", "Limit", "Filters"); e != nil {
		return nil, nil, e
	}
	ids, e := p.ids("KeyIds", keyPairIDPattern.MatchString, "InvalidParameterValue.KeyPairIdMalformed", "key pair")
	if e != nil {
		return nil, nil, e
	}
	fs, e := p.filters(keyPairFilters, maxKeyPairFilterValues)
	if e != nil {
		return nil, nil, e
	}
	if len(ids) > 0 && len(fs) > 0 {
		return nil, nil, errorf("InvalidParameter.ParameterConflict", "The parameters `KeyIds` and `Filters` cannot be used together.")
	}
	offset, limit, e := p.paging()
	if e != nil {
		return nil, nil, e
	}
	return nil, func() answer {
		s.mu.RLock()
		defer s.mu.RUnlock()
		var matched []*KeyPair
		for _, k := range c.acct.keyPairList() {
			if k.Region == c.region && (len(ids) == 0 || slices.Contains(ids, k.ID)) && matchKeyPair(k, fs) {
				matched = append(matched, k)
			}
		}
		lo, hi := page(len(matched), offset, limit)
		set := make([]wireKeyPair, 0, hi-lo)
		for _, k := range matched[lo:hi] {
			w := wireKeyPair{KeyID: k.ID, KeyName: k.Name, PublicKey: k.PublicKey, AssociatedInstanceIDs: []string{},
				CreatedTime: formatTime(s.start), Tags: []wireTag{}}
			for _, in := range c.acct.byRegion[c.region] {
				if slices.Contains(in.keys(c.now), k.ID) {
					w.AssociatedInstanceIDs = append(w.AssociatedInstanceIDs, in.ID)
				}
			}
			set = append(set, w)
		}
		return answer{body: describeKeyPairsResponse{TotalCount: len(matched), KeyPairSet: set, RequestID: c.requestID}}
	}, nil
}

// matchKeyPair reports whether k passes every filter; key-name matches a
// substring, as documented ("fuzzy match").
func matchKeyPair(k *KeyPair, fs []filter) bool {
	for _, f := range fs {
		var ok bool
		switch f.Name {
		case "key-id":
			ok = slices.Contains(f.Values, k.ID)
		case "key-name":
			ok = slices.ContainsFunc(f.Values, func(v string) bool { return strings.Contains(k.Name, v) })
		}
		if !ok {
			return false
		}
	}
	return true
}
