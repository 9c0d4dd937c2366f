package lighthouse

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The LoadCredential tests change environment variables, which are process
// state, so they cannot run in parallel with each other or with anything
// that reads the environment (t.Setenv enforces this).

// clearCredentialEnv unsets the variables LoadCredential reads for the
// rest of the test and points HOME at an empty directory.
func clearCredentialEnv(t *testing.T) (home string) {
	t.Helper()
	for _, k := range []string{EnvSecretID, EnvSecretKey, EnvCredentialsFile} {
		t.Setenv(k, "") // restores the original value after the test
		os.Unsetenv(k)
	}
	home = t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("USERPROFILE", home)
	return home
}

func TestLoadCredentialFromEnv(t *testing.T) {
	clearCredentialEnv(t)
	t.Setenv(EnvSecretID, "AKIDenv")
	t.Setenv(EnvSecretKey, "env-key")
	// The environment wins over a profile file, even a broken one.
	t.Setenv(EnvCredentialsFile, filepath.Join(t.TempDir(), "missing"))

	got, err := LoadCredential()
	if err != nil {
		t.Fatalf("LoadCredential() = %v", err)
	}
	if diff := cmp.Diff(Credential{SecretID: "AKIDenv", SecretKey: "env-key"}, got); diff != "" {
		t.Errorf("LoadCredential() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadCredentialFromProfile(t *testing.T) {
	clearCredentialEnv(t)
	path := filepath.Join(t.TempDir(), "credentials")
	profile := "# comment\n[other]\nsecret_id = AKIDother\nsecret_key = other-key\n\n[default]\nsecret_id = AKIDfile\nsecret_key = file-key\n"
	if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvCredentialsFile, path)

	got, err := LoadCredential()
	if err != nil {
		t.Fatalf("LoadCredential() = %v", err)
	}
	if diff := cmp.Diff(Credential{SecretID: "AKIDfile", SecretKey: "file-key"}, got); diff != "" {
		t.Errorf("LoadCredential() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadCredentialFromDefaultProfile(t *testing.T) {
	home := clearCredentialEnv(t)
	dir := filepath.Join(home, ".tencentcloud")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte("[default]\nsecret_id=AKIDhome\nsecret_key=home-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := LoadCredential()
	if err != nil {
		t.Fatalf("LoadCredential() = %v", err)
	}
	if diff := cmp.Diff(Credential{SecretID: "AKIDhome", SecretKey: "home-key"}, got); diff != "" {
		t.Errorf("LoadCredential() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadCredentialNone(t *testing.T) {
	home := clearCredentialEnv(t)

	_, err := LoadCredential()
	if err == nil {
		t.Fatal("LoadCredential() = nil error, want one")
	}
	for _, want := range []string{EnvSecretID, EnvSecretKey, filepath.Join(home, ".tencentcloud", "credentials")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("LoadCredential() error %q does not name %s", err, want)
		}
	}
}

func TestLoadCredentialErrors(t *testing.T) {
	const secret = "partial-SECRET-key"
	tests := []struct {
		name    string
		env     map[string]string
		profile string // written to a file named by TENCENTCLOUD_CREDENTIALS_FILE
	}{
		{name: "EmptyEnvKey", env: map[string]string{EnvSecretID: "AKIDenv", EnvSecretKey: ""}},
		{name: "EmptyFileVar", env: map[string]string{EnvCredentialsFile: ""}},
		{name: "MissingFile", env: map[string]string{EnvCredentialsFile: "/nonexistent/credentials"}},
		{name: "ProfileWithoutID", profile: "[default]\nsecret_key = " + secret + "\n"},
		{name: "ProfileBadSection", profile: "[default\nsecret_id = AKID\nsecret_key = " + secret + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearCredentialEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.profile != "" {
				path := filepath.Join(t.TempDir(), "credentials")
				if err := os.WriteFile(path, []byte(tt.profile), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Setenv(EnvCredentialsFile, path)
			}

			_, err := LoadCredential()
			if err == nil {
				t.Fatal("LoadCredential() = nil error, want one")
			}
			if !strings.HasPrefix(err.Error(), "load credential: ") || strings.Contains(err.Error(), secret) {
				t.Errorf("LoadCredential() error = %q, want a wrapped error without the key", err)
			}
		})
	}
}

// TestSecretsNeverPrinted formats credentials, configs and API errors every
// way a program might, and checks that the secret key and token never appear.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	const token = "tok-THIS-MUST-NEVER-BE-PRINTED"
	cred := Credential{SecretID: testSecretID, SecretKey: testSecretKey, Token: token}
	cfg := Config{Endpoint: "http://127.0.0.1:1", Credential: cred}

	// Errors from a call the API refused and from one that never connected.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusOK, "AuthFailure.SignatureFailure", "signature mismatch")
	}))
	t.Cleanup(srv.Close)
	cfg.Endpoint = srv.URL
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	_, apiErr := c.ResetInstance(t.Context(), testRegion, "lhins-ruy9d2tw", "")
	if apiErr == nil {
		t.Fatal("ResetInstance succeeded, want an error")
	}
	refused := newTestClient(t, Config{Endpoint: "http://127.0.0.1:1"})
	_, netErr := refused.DescribeInstances(t.Context(), testRegion, []string{"lhins-ruy9d2tw"})
	if netErr == nil {
		t.Fatal("DescribeInstances succeeded, want an error")
	}

	var out bytes.Buffer
	for _, v := range []any{cred, &cred, cfg, &cfg, apiErr, netErr} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("test", "cred", cred, "config", cfg, "err", apiErr, "net_err", netErr)
	}

	if !strings.Contains(out.String(), testSecretID) {
		t.Errorf("output does not show the secret ID:\n%s", out.String())
	}
	for _, secret := range []string{testSecretKey, token, "Signature=", "Authorization"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output contains %q:\n%s", secret, out.String())
		}
	}
}
