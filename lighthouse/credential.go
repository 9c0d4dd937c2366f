package lighthouse

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
)

// Environment variables and the profile file LoadCredential reads. The SDK's
// providers define them; they are repeated here for error messages and docs.
const (
	EnvSecretID        = "TENCENTCLOUD_SECRET_ID"
	EnvSecretKey       = "TENCENTCLOUD_SECRET_KEY"
	EnvCredentialsFile = common.EnvCredentialFile // TENCENTCLOUD_CREDENTIALS_FILE
)

// redacted stands in for a secret wherever a Credential is printed.
const redacted = "[REDACTED]"

// Credential is a Tencent Cloud API key pair, with the session token of
// temporary credentials. Its String, GoString and LogValue methods print the
// SecretID only, and MarshalJSON encodes placeholders, so a Credential can be
// logged or wrapped in an error without leaking the key. Most callers get one
// from LoadCredential.
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

func placeholder(secret string) string {
	if secret == "" {
		return "[EMPTY]"
	}
	return redacted
}

// LoadCredential reads the API key from the environment
// (TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY) or, when those are
// unset, from the [default] section of the profile file
// (TENCENTCLOUD_CREDENTIALS_FILE, else ~/.tencentcloud/credentials), through
// the SDK's providers. It never asks the CVM metadata service, which outside
// Tencent Cloud would hang without a timeout.
func LoadCredential() (Credential, error) {
	chain := common.NewProviderChain([]common.Provider{
		common.DefaultEnvProvider(),
		common.DefaultProfileProvider(),
	})
	cred, err := chain.GetCredential()
	if err != nil {
		var sdkErr *tcerr.TencentCloudSDKError
		if !errors.As(err, &sdkErr) {
			return Credential{}, fmt.Errorf("load credential: %w", err)
		}
		// The chain reports "neither provider is configured" only by this
		// message; any other error is a provider's own (a variable set but
		// empty, an unreadable profile file) and names the problem itself.
		// SDK messages carry paths and variable names, never secrets.
		if sdkErr.Message == "no credential found in every providers" {
			return Credential{}, fmt.Errorf("load credential: none found: set %s and %s, or put secret_id and secret_key in the [default] section of %s",
				EnvSecretID, EnvSecretKey, profilePath())
		}
		return Credential{}, fmt.Errorf("load credential: %s", sdkErr.Message)
	}
	id, key, token := cred.GetCredential()
	return Credential{SecretID: id, SecretKey: key, Token: token}, nil
}

// profilePath returns the profile file the SDK's profile provider reads.
func profilePath() string {
	if p, ok := os.LookupEnv(EnvCredentialsFile); ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join("~", ".tencentcloud", "credentials")
	}
	return filepath.Join(home, ".tencentcloud", "credentials")
}
