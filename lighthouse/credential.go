package lighthouse

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Environment variables LoadIdentity reads.
const (
	EnvSecretID  = "TENCENTCLOUD_SECRET_ID"
	EnvSecretKey = "TENCENTCLOUD_SECRET_KEY"
	// EnvSessionToken holds the token of a temporary key in EnvSecretID and
	// EnvSecretKey; EnvToken is tccli's name for it.
	EnvSessionToken = "TENCENTCLOUD_SESSION_TOKEN"
	EnvToken        = "TENCENTCLOUD_TOKEN"
	// EnvCredentialsFile names the SDK's credentials file, replacing
	// ~/.tencentcloud/credentials.
	EnvCredentialsFile = "TENCENTCLOUD_CREDENTIALS_FILE"
	// EnvProfile names the profile to use; EnvTccliProfile is tccli's
	// variable, read when EnvProfile is unset.
	EnvProfile      = "TENCENTCLOUD_PROFILE"
	EnvTccliProfile = "TCCLI_PROFILE"
)

// DefaultProfile is the profile used when none is named and the
// environment holds no key.
const DefaultProfile = "default"

// maxCredentialFileSize bounds a credentials file; real ones are a few
// hundred bytes.
const maxCredentialFileSize = 1 << 20

// redacted stands in for a secret wherever a Credential is printed.
const redacted = "[REDACTED]"

// Credential is a Tencent Cloud API key pair, with the session token of
// temporary credentials. Its String, GoString and LogValue methods print the
// SecretID only, and MarshalJSON encodes placeholders, so a Credential can be
// logged or wrapped in an error without leaking the key. Most callers get one
// from LoadIdentity.
type Credential struct {
	SecretID  string
	SecretKey string
	Token     string // "" for a permanent key
}

// String returns the SecretID and placeholders for the key and token.
func (c Credential) String() string {
	s := fmt.Sprintf("Credential{SecretID: %s, SecretKey: %s", c.SecretID, placeholder(c.SecretKey))
	if c.Token != "" {
		s += ", Token: " + redacted
	}
	return s + "}"
}

// GoString is String, so that %#v does not print the key either.
func (c Credential) GoString() string { return c.String() }

// LogValue reports the SecretID and placeholders for the key and token, so
// slog never writes the secrets.
func (c Credential) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("secret_id", c.SecretID),
		slog.String("secret_key", placeholder(c.SecretKey)),
	}
	if c.Token != "" {
		attrs = append(attrs, slog.String("token", redacted))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes the SecretID and placeholders, so that a Config logged
// by a JSON handler (which marshals structs) does not expose the key either.
func (c Credential) MarshalJSON() ([]byte, error) {
	v := struct {
		SecretID  string
		SecretKey string
		Token     string `json:",omitempty"`
	}{SecretID: c.SecretID, SecretKey: placeholder(c.SecretKey)}
	if c.Token != "" {
		v.Token = redacted
	}
	return json.Marshal(v)
}

// MaskedID returns the SecretID with all but its first and last 4
// characters replaced by "…", for a banner that shows which key is in use:
// "AKID…Xy9z". An ID of 12 characters or fewer keeps only its first 2.
func (c Credential) MaskedID() string {
	id := c.SecretID
	if len(id) <= 12 {
		return id[:min(2, len(id))] + "…"
	}
	return id[:4] + "…" + id[len(id)-4:]
}

func placeholder(secret string) string {
	if secret == "" {
		return "[EMPTY]"
	}
	return redacted
}

// CredentialConfig says which credential LoadIdentity loads. Zero fields
// take the defaults given.
type CredentialConfig struct {
	// Profile names a profile: a [Profile] section of the SDK's credentials
	// file, else tccli's ~/.tccli/<Profile>.credential. Default
	// $TENCENTCLOUD_PROFILE, else $TCCLI_PROFILE. A named profile wins over
	// a key in the environment; without one, the environment's key is used,
	// else profile DefaultProfile.
	Profile string
	// RoleARN is a CAM role to assume with the loaded key (see Role).
	// Default: the tccli profile's role-arn, else no role.
	RoleARN string
	// RoleSessionName names the role session. Default: the tccli profile's
	// role-session-name, else DefaultRoleSessionPrefix and the Unix time.
	RoleSessionName string
	// RoleDuration is how long each temporary key lasts. Default
	// DefaultRoleDuration.
	RoleDuration time.Duration
	// STSEndpoint is STS's base URL (Role.STSEndpoint). Default: derived
	// from the Client's Endpoint.
	STSEndpoint string
}

// Identity is who batchreset acts as: a key, where it was found, and the
// role assumed with it, if any. Pass Credential and Role to Config. Its
// String is the line a start banner prints; it never shows a secret.
type Identity struct {
	Credential Credential
	// Source says where Credential was found: "environment",
	// "profile prod in /root/.tencentcloud/credentials" or
	// "tccli profile prod in /root/.tccli/prod.credential".
	Source string
	// Role is the role to assume; its ARN is "" for none.
	Role Role
}

// String returns, for example, "profile prod in /root/.tencentcloud/credentials,
// SecretId AKID…Xy9z" or "role qcs::cam::uin/100001:roleName/reset via STS,
// session batchreset-1767225600, assumed with SecretId AKID…Xy9z from
// environment".
func (id Identity) String() string {
	key := "SecretId " + id.Credential.MaskedID()
	if id.Credential.Token != "" {
		key += " (temporary)"
	}
	if id.Role.ARN == "" {
		return id.Source + ", " + key
	}
	role := id.Role.String()
	if id.Role.SessionName != "" {
		role += ", session " + id.Role.SessionName
	}
	return role + ", assumed with " + key + " from " + id.Source
}

// GoString is String, so that %#v does not print the key either.
func (id Identity) GoString() string { return id.String() }

// LogValue reports the source, the masked SecretId and the role.
func (id Identity) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("source", id.Source),
		slog.String("secret_id", id.Credential.MaskedID()),
	}
	if id.Role.ARN != "" {
		attrs = append(attrs, slog.String("role_arn", id.Role.ARN), slog.String("role_session", id.Role.SessionName))
	}
	return slog.GroupValue(attrs...)
}

// LoadIdentity finds the API key to use, and the role to assume with it,
// from the environment and the profile files of the SDK and of tccli:
//
//   - A profile named by cfg.Profile, $TENCENTCLOUD_PROFILE or
//     $TCCLI_PROFILE: the [name] section (secret_id, secret_key) of the
//     SDK's credentials file ($TENCENTCLOUD_CREDENTIALS_FILE, else
//     ~/.tencentcloud/credentials), else tccli's ~/.tccli/<name>.credential
//     (secretId, secretKey, token, role-arn, role-session-name). A named
//     profile that is in neither is an error naming each path looked at.
//   - Otherwise $TENCENTCLOUD_SECRET_ID and $TENCENTCLOUD_SECRET_KEY, with
//     $TENCENTCLOUD_SESSION_TOKEN (or tccli's $TENCENTCLOUD_TOKEN) for a
//     temporary key.
//   - Otherwise profile DefaultProfile, as above.
//
// It makes no call and never asks the CVM metadata service, which outside
// Tencent Cloud would hang. No file content makes it panic, and its errors
// name files, lines and variables, never their values.
func LoadIdentity(cfg CredentialConfig) (Identity, error) {
	id, err := loadIdentity(cfg)
	if err != nil {
		return Identity{}, fmt.Errorf("load credential: %w", err)
	}
	return id, nil
}

func loadIdentity(cfg CredentialConfig) (Identity, error) {
	name, named := cfg.Profile, cfg.Profile != ""
	for _, env := range []string{EnvProfile, EnvTccliProfile} {
		if !named {
			name = os.Getenv(env)
			named = name != ""
		}
	}
	var p keySource
	var err error
	switch _, envKey := os.LookupEnv(EnvSecretID); {
	case named:
		p, err = loadProfile(name, true)
		if err == nil && envKey {
			p.source += " (" + EnvSecretID + " ignored)"
		}
	case envKey:
		p, err = loadEnv()
	default:
		p, err = loadProfile(DefaultProfile, false)
	}
	if err != nil {
		return Identity{}, err
	}

	id := Identity{Credential: p.cred, Source: p.source}
	role := Role{ARN: cfg.RoleARN, SessionName: cfg.RoleSessionName, Duration: cfg.RoleDuration, STSEndpoint: cfg.STSEndpoint}
	if role.ARN == "" && p.roleARN != "" {
		role.ARN = p.roleARN
		if role.SessionName == "" {
			role.SessionName = p.roleSessionName
		}
	}
	if role.ARN != "" {
		if id.Role, err = role.withDefaults(time.Now()); err != nil {
			return Identity{}, err
		}
	}
	return id, nil
}

// keySource is what one source of keys yielded.
type keySource struct {
	cred            Credential
	source          string
	roleARN         string
	roleSessionName string
}

func loadEnv() (keySource, error) {
	p := keySource{source: "environment"}
	p.cred.SecretID, p.cred.SecretKey = os.Getenv(EnvSecretID), os.Getenv(EnvSecretKey)
	if p.cred.SecretID == "" || p.cred.SecretKey == "" {
		return keySource{}, fmt.Errorf("%s is set, so %s and %s must both be non-empty", EnvSecretID, EnvSecretID, EnvSecretKey)
	}
	p.cred.Token = os.Getenv(EnvSessionToken)
	if alt := os.Getenv(EnvToken); alt != "" {
		if p.cred.Token != "" && p.cred.Token != alt {
			return keySource{}, fmt.Errorf("%s and %s differ: set one", EnvSessionToken, EnvToken)
		}
		p.cred.Token = alt
	}
	return p, nil
}

// profileNamePattern keeps a profile name from reaching outside ~/.tccli.
var profileNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$`)

// loadProfile loads profile name from the SDK's credentials file, else from
// tccli's. named says the name was asked for, rather than the default.
func loadProfile(name string, named bool) (keySource, error) {
	if !profileNamePattern.MatchString(name) {
		return keySource{}, fmt.Errorf("profile name %q: want letters, digits and _.- only", name)
	}
	home, homeErr := os.UserHomeDir()
	var looked []string

	path, explicit := os.LookupEnv(EnvCredentialsFile)
	switch {
	case explicit && path == "":
		return keySource{}, fmt.Errorf("%s is set but empty", EnvCredentialsFile)
	case !explicit && homeErr == nil:
		path = filepath.Join(home, ".tencentcloud", "credentials")
	}
	if path != "" {
		data, err := readCredentialFile(path)
		switch {
		case err == nil:
			p, found, err := sdkProfile(data, path, name)
			if err != nil || found {
				return p, err
			}
			looked = append(looked, fmt.Sprintf("%s (no [%s] section)", path, name))
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			looked = append(looked, path+" (no such file)")
		default:
			return keySource{}, err
		}
	}

	if homeErr == nil {
		path := filepath.Join(home, ".tccli", name+".credential")
		data, err := readCredentialFile(path)
		switch {
		case err == nil:
			return tccliProfile(data, path, name)
		case errors.Is(err, fs.ErrNotExist):
			looked = append(looked, path+" (no such file)")
		default:
			return keySource{}, err
		}
	} else {
		looked = append(looked, "~/.tencentcloud and ~/.tccli (no home directory: "+homeErr.Error()+")")
	}

	if named {
		return keySource{}, fmt.Errorf("profile %q not found: looked in %s", name, strings.Join(looked, ", "))
	}
	return keySource{}, fmt.Errorf("none found: set %s and %s, or add a [%s] section with secret_id and secret_key; looked in %s",
		EnvSecretID, EnvSecretKey, name, strings.Join(looked, ", "))
}

// readCredentialFile reads a credentials file of bounded size.
func readCredentialFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxCredentialFileSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxCredentialFileSize)
	}
	return data, nil
}

// sdkProfile returns section name of the SDK's INI credentials file data,
// read from path; found is false when there is no such section.
func sdkProfile(data []byte, path, name string) (p keySource, found bool, err error) {
	sections, err := parseINI(data)
	if err != nil {
		return keySource{}, false, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := sections[name]
	if !ok {
		return keySource{}, false, nil
	}
	p = keySource{cred: Credential{SecretID: s["secret_id"], SecretKey: s["secret_key"]}, source: fmt.Sprintf("profile %s in %s", name, path)}
	if p.cred.SecretID == "" || p.cred.SecretKey == "" {
		return keySource{}, false, fmt.Errorf("%s: section [%s] needs secret_id and secret_key", path, name)
	}
	return p, true, nil
}

// parseINI parses the SDK's credentials format: [section] lines, then
// key = value lines; blank lines and lines starting with # or ; are
// skipped. Keys before the first section are ignored, as the SDK ignores
// them. Errors give line numbers, never content, which may hold a key.
func parseINI(data []byte) (map[string]map[string]string, error) {
	sections := make(map[string]map[string]string)
	var current map[string]string // nil before the first section
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			name, ok := strings.CutSuffix(line[1:], "]")
			name = strings.TrimSpace(name)
			if !ok || name == "" || strings.ContainsAny(name, "[]") {
				return nil, fmt.Errorf("line %d: malformed section header", n)
			}
			if _, dup := sections[name]; dup {
				return nil, fmt.Errorf("line %d: section header repeated", n)
			}
			current = make(map[string]string)
			sections[name] = current
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: want key = value", n)
		}
		if current == nil {
			continue
		}
		if _, dup := current[key]; dup {
			return nil, fmt.Errorf("line %d: key repeated in its section", n)
		}
		current[key] = value
	}
	return sections, nil
}

// Values of a tccli profile's "type" (more-apis.md §1e).
const (
	tccliTypeCVMRole = "cvm-role"
	tccliTypeOAuth   = "oauth"
	tccliTypeSSO     = "sso"
)

// tccliProfile reads tccli's JSON profile file data, read from path.
// OAuth and SSO profiles hold a temporary key that tccli refreshes itself;
// it is used until its expiresAt, after which tccli must log in again.
// CVM-role profiles need the metadata service and are refused.
func tccliProfile(data []byte, path, name string) (keySource, error) {
	var f struct {
		SecretID        string          `json:"secretId"`
		SecretKey       string          `json:"secretKey"`
		Token           string          `json:"token"`
		RoleARN         string          `json:"role-arn"`
		RoleSessionName string          `json:"role-session-name"`
		Type            string          `json:"type"`
		ExpiresAt       json.RawMessage `json:"expiresAt"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		// A syntax error's offset, not its text: the text may quote a key.
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return keySource{}, fmt.Errorf("%s: not valid JSON (at byte %d)", path, syntax.Offset)
		}
		return keySource{}, fmt.Errorf("%s: want an object of strings", path)
	}
	source := fmt.Sprintf("tccli profile %s in %s", name, path)
	switch f.Type {
	case "":
	case tccliTypeCVMRole:
		return keySource{}, fmt.Errorf("%s: type %s needs the CVM metadata service, which batchreset does not use: put a key or role-arn in the profile", path, tccliTypeCVMRole)
	case tccliTypeOAuth, tccliTypeSSO:
		expires, err := tccliExpiry(f.ExpiresAt)
		if err != nil {
			return keySource{}, fmt.Errorf("%s: expiresAt: %w", path, err)
		}
		if !time.Now().Before(expires) {
			return keySource{}, fmt.Errorf("%s: the %s key expired at %s: log in with tccli again", path, f.Type, expires.UTC().Format(time.RFC3339))
		}
		source += fmt.Sprintf(" (%s, expires %s)", f.Type, expires.UTC().Format(time.RFC3339))
	default:
		return keySource{}, fmt.Errorf("%s: unknown profile type %q", path, f.Type)
	}
	if f.SecretID == "" || f.SecretKey == "" {
		return keySource{}, fmt.Errorf("%s: needs secretId and secretKey", path)
	}
	return keySource{
		cred:            Credential{SecretID: f.SecretID, SecretKey: f.SecretKey, Token: f.Token},
		source:          source,
		roleARN:         f.RoleARN,
		roleSessionName: f.RoleSessionName,
	}, nil
}

// tccliExpiry parses an expiresAt: Unix seconds, or milliseconds when too
// large for seconds (past the year 5000), as a number or a string.
func tccliExpiry(raw json.RawMessage) (time.Time, error) {
	s := strings.Trim(string(raw), `"`)
	if s == "" || s == "null" {
		return time.Time{}, errors.New("missing")
	}
	sec, err := strconv.ParseFloat(s, 64)
	if err != nil || sec < 0 || sec > 1e15 {
		return time.Time{}, errors.New("want Unix seconds")
	}
	if sec > 1e11 {
		return time.UnixMilli(int64(sec)), nil
	}
	return time.Unix(int64(sec), 0), nil
}
