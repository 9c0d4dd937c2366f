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
	"time"

	"github.com/google/go-cmp/cmp"
)

// loadCredential loads the credential the default chain finds, with no
// profile and no role, as LoadIdentity does for a command given neither.
func loadCredential() (Credential, error) {
	id, err := LoadIdentity(CredentialConfig{})
	return id.Credential, err
}

// The loadCredential tests change environment variables, which are process
// state, so they cannot run in parallel with each other or with anything
// that reads the environment (t.Setenv enforces this).

// clearCredentialEnv unsets the variables LoadCredential reads for the
// rest of the test and points HOME at an empty directory.
func clearCredentialEnv(t *testing.T) (home string) {
	t.Helper()
	for _, k := range []string{EnvSecretID, EnvSecretKey, EnvSessionToken, EnvToken, EnvCredentialsFile, EnvProfile, EnvTccliProfile} {
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

	got, err := loadCredential()
	if err != nil {
		t.Fatalf("loadCredential() = %v", err)
	}
	if diff := cmp.Diff(Credential{SecretID: "AKIDenv", SecretKey: "env-key"}, got); diff != "" {
		t.Errorf("loadCredential() mismatch (-want +got):\n%s", diff)
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

	got, err := loadCredential()
	if err != nil {
		t.Fatalf("loadCredential() = %v", err)
	}
	if diff := cmp.Diff(Credential{SecretID: "AKIDfile", SecretKey: "file-key"}, got); diff != "" {
		t.Errorf("loadCredential() mismatch (-want +got):\n%s", diff)
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

	got, err := loadCredential()
	if err != nil {
		t.Fatalf("loadCredential() = %v", err)
	}
	if diff := cmp.Diff(Credential{SecretID: "AKIDhome", SecretKey: "home-key"}, got); diff != "" {
		t.Errorf("loadCredential() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadCredentialNone(t *testing.T) {
	home := clearCredentialEnv(t)

	_, err := loadCredential()
	if err == nil {
		t.Fatal("loadCredential() = nil error, want one")
	}
	for _, want := range []string{EnvSecretID, EnvSecretKey, filepath.Join(home, ".tencentcloud", "credentials")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("loadCredential() error %q does not name %s", err, want)
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

			_, err := loadCredential()
			if err == nil {
				t.Fatal("loadCredential() = nil error, want one")
			}
			if !strings.HasPrefix(err.Error(), "load credential: ") || strings.Contains(err.Error(), secret) {
				t.Errorf("loadCredential() error = %q, want a wrapped error without the key", err)
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
	_, apiErr := c.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
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

// hostileSecret is a key every hostile file below holds somewhere; no
// error may show it.
const hostileSecret = "hostile-SECRET-9f8e7d"

func TestLoadIdentity(t *testing.T) {
	future := time.Now().Add(time.Hour).Unix()
	tests := []struct {
		name  string
		cfg   CredentialConfig
		env   map[string]string
		files map[string]string // path under HOME -> content
		want  Identity          // "$HOME" in Source stands for the home directory
		// wantErr are substrings of the error ("$HOME" as above); none
		// means success.
		wantErr []string
	}{
		{
			name: "EnvSessionToken",
			env:  map[string]string{EnvSecretID: "AKIDenv", EnvSecretKey: "env-key", EnvSessionToken: "env-token"},
			want: Identity{Credential: Credential{SecretID: "AKIDenv", SecretKey: "env-key", Token: "env-token"}, Source: "environment"},
		},
		{
			name: "EnvTccliToken",
			env:  map[string]string{EnvSecretID: "AKIDenv", EnvSecretKey: "env-key", EnvToken: "env-token"},
			want: Identity{Credential: Credential{SecretID: "AKIDenv", SecretKey: "env-key", Token: "env-token"}, Source: "environment"},
		},
		{
			name:    "EnvTokensDiffer",
			env:     map[string]string{EnvSecretID: "AKIDenv", EnvSecretKey: "env-key", EnvSessionToken: "a", EnvToken: "b"},
			wantErr: []string{EnvSessionToken, EnvToken},
		},
		{
			// The SDK's own provider panics on this file.
			name:  "OnlyProdSectionNamed",
			cfg:   CredentialConfig{Profile: "prod"},
			files: map[string]string{".tencentcloud/credentials": "[prod]\nsecret_id = AKIDprod\nsecret_key = prod-key\n"},
			want:  Identity{Credential: Credential{SecretID: "AKIDprod", SecretKey: "prod-key"}, Source: "profile prod in $HOME/.tencentcloud/credentials"},
		},
		{
			name:    "OnlyProdSectionDefault",
			files:   map[string]string{".tencentcloud/credentials": "[prod]\nsecret_id = AKIDprod\nsecret_key = prod-key\n"},
			wantErr: []string{EnvSecretID, EnvSecretKey, "$HOME/.tencentcloud/credentials (no [default] section)", "$HOME/.tccli/default.credential (no such file)"},
		},
		{
			name:  "ProfileFromEnv",
			env:   map[string]string{EnvProfile: "prod", EnvTccliProfile: "other"},
			files: map[string]string{".tencentcloud/credentials": "[default]\nsecret_id=AKIDdef\nsecret_key=k\n[prod]\nsecret_id=AKIDprod\nsecret_key=prod-key\n"},
			want:  Identity{Credential: Credential{SecretID: "AKIDprod", SecretKey: "prod-key"}, Source: "profile prod in $HOME/.tencentcloud/credentials"},
		},
		{
			name:  "NamedProfileBeatsEnvKey",
			cfg:   CredentialConfig{Profile: "prod"},
			env:   map[string]string{EnvSecretID: "AKIDenv", EnvSecretKey: "env-key"},
			files: map[string]string{".tencentcloud/credentials": "[prod]\nsecret_id=AKIDprod\nsecret_key=prod-key\n"},
			want:  Identity{Credential: Credential{SecretID: "AKIDprod", SecretKey: "prod-key"}, Source: "profile prod in $HOME/.tencentcloud/credentials (TENCENTCLOUD_SECRET_ID ignored)"},
		},
		{
			name:  "SDKFileBeforeTccli",
			cfg:   CredentialConfig{Profile: "prod"},
			files: map[string]string{".tencentcloud/credentials": "[prod]\nsecret_id=AKIDsdk\nsecret_key=k1\n", ".tccli/prod.credential": `{"secretId":"AKIDtccli","secretKey":"k2"}`},
			want:  Identity{Credential: Credential{SecretID: "AKIDsdk", SecretKey: "k1"}, Source: "profile prod in $HOME/.tencentcloud/credentials"},
		},
		{
			name:  "TccliProfileFromEnv",
			env:   map[string]string{EnvTccliProfile: "ops"},
			files: map[string]string{".tencentcloud/credentials": "[default]\nsecret_id=AKIDdef\nsecret_key=k\n", ".tccli/ops.credential": `{"secretId":"AKIDops","secretKey":"ops-key","token":""}`},
			want:  Identity{Credential: Credential{SecretID: "AKIDops", SecretKey: "ops-key"}, Source: "tccli profile ops in $HOME/.tccli/ops.credential"},
		},
		{
			name:  "TccliDefault",
			files: map[string]string{".tccli/default.credential": `{"secretId":"AKIDdef","secretKey":"def-key"}`},
			want:  Identity{Credential: Credential{SecretID: "AKIDdef", SecretKey: "def-key"}, Source: "tccli profile default in $HOME/.tccli/default.credential"},
		},
		{
			name:  "TccliRole",
			cfg:   CredentialConfig{Profile: "ops", RoleDuration: time.Hour},
			files: map[string]string{".tccli/ops.credential": `{"secretId":"AKIDops","secretKey":"ops-key","role-arn":"qcs::cam::uin/100001:roleName/reset","role-session-name":"ops-session"}`},
			want: Identity{
				Credential: Credential{SecretID: "AKIDops", SecretKey: "ops-key"},
				Source:     "tccli profile ops in $HOME/.tccli/ops.credential",
				Role:       Role{ARN: "qcs::cam::uin/100001:roleName/reset", SessionName: "ops-session", Duration: time.Hour},
			},
		},
		{
			name:  "ConfigRoleWins",
			cfg:   CredentialConfig{Profile: "ops", RoleARN: "qcs::cam::uin/100001:roleName/mine", RoleSessionName: "mine", STSEndpoint: "http://127.0.0.1:9"},
			files: map[string]string{".tccli/ops.credential": `{"secretId":"AKIDops","secretKey":"ops-key","role-arn":"qcs::cam::uin/100001:roleName/theirs","role-session-name":"theirs"}`},
			want: Identity{
				Credential: Credential{SecretID: "AKIDops", SecretKey: "ops-key"},
				Source:     "tccli profile ops in $HOME/.tccli/ops.credential",
				Role:       Role{ARN: "qcs::cam::uin/100001:roleName/mine", SessionName: "mine", Duration: DefaultRoleDuration, STSEndpoint: "http://127.0.0.1:9"},
			},
		},
		{
			name:  "TccliOAuth",
			cfg:   CredentialConfig{Profile: "sso"},
			files: map[string]string{".tccli/sso.credential": fmt.Sprintf(`{"type":"oauth","secretId":"AKIDtmp","secretKey":"tmp-key","token":"tmp-token","expiresAt":%d}`, future)},
			want: Identity{
				Credential: Credential{SecretID: "AKIDtmp", SecretKey: "tmp-key", Token: "tmp-token"},
				Source:     fmt.Sprintf("tccli profile sso in $HOME/.tccli/sso.credential (oauth, expires %s)", time.Unix(future, 0).UTC().Format(time.RFC3339)),
			},
		},
		{
			name:    "TccliOAuthExpired",
			cfg:     CredentialConfig{Profile: "sso"},
			files:   map[string]string{".tccli/sso.credential": `{"type":"sso","secretId":"AKIDtmp","secretKey":"` + hostileSecret + `","token":"t","expiresAt":"1700000000"}`},
			wantErr: []string{"expired at 2023-11-14T22:13:20Z", "log in"},
		},
		{
			name:    "TccliCVMRole",
			cfg:     CredentialConfig{Profile: "cvm"},
			files:   map[string]string{".tccli/cvm.credential": `{"type":"cvm-role"}`},
			wantErr: []string{"cvm-role", "metadata"},
		},
		{
			name:    "NamedProfileMissing",
			cfg:     CredentialConfig{Profile: "prod"},
			files:   map[string]string{".tencentcloud/credentials": "[default]\nsecret_id=AKIDdef\nsecret_key=" + hostileSecret + "\n"},
			wantErr: []string{`profile "prod" not found`, "$HOME/.tencentcloud/credentials (no [prod] section)", "$HOME/.tccli/prod.credential (no such file)"},
		},
		{
			name:    "NamedFileMissing",
			env:     map[string]string{EnvCredentialsFile: "/nonexistent/credentials", EnvProfile: "prod"},
			wantErr: []string{"/nonexistent/credentials"},
		},
		{
			name:    "ProfileNameEscapes",
			cfg:     CredentialConfig{Profile: "../../etc/passwd"},
			wantErr: []string{"profile name"},
		},
		{
			name:    "RoleDurationTooLong",
			cfg:     CredentialConfig{RoleARN: "qcs::cam::uin/1:roleName/x", RoleDuration: 13 * time.Hour},
			env:     map[string]string{EnvSecretID: "AKIDenv", EnvSecretKey: "env-key"},
			wantErr: []string{"role duration"},
		},
		{
			name:    "RoleSessionNameInvalid",
			cfg:     CredentialConfig{RoleARN: "qcs::cam::uin/1:roleName/x", RoleSessionName: "has space"},
			env:     map[string]string{EnvSecretID: "AKIDenv", EnvSecretKey: "env-key"},
			wantErr: []string{"role session name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := clearCredentialEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			writeHomeFiles(t, home, tt.files)

			got, err := LoadIdentity(tt.cfg)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("LoadIdentity() = %v, want an error", got)
				}
				for _, want := range tt.wantErr {
					if want = strings.ReplaceAll(want, "$HOME", home); !strings.Contains(err.Error(), want) {
						t.Errorf("LoadIdentity() error %q does not contain %q", err, want)
					}
				}
				if strings.Contains(err.Error(), hostileSecret) {
					t.Errorf("LoadIdentity() error %q shows the secret key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadIdentity() = %v", err)
			}
			tt.want.Source = strings.ReplaceAll(tt.want.Source, "$HOME", home)
			if tt.want.Role.ARN != "" && tt.want.Role.SessionName == "" {
				tt.want.Role.SessionName = got.Role.SessionName
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LoadIdentity() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// writeHomeFiles writes files (path under home -> content).
func writeHomeFiles(t *testing.T, home string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoadIdentityHostileFiles feeds files no tool would write, as both
// kinds of profile file: each must be an error or a complete key, never a
// panic, and no error may show the secret.
func TestLoadIdentityHostileFiles(t *testing.T) {
	contents := []string{
		"",
		"\x00\xff\xfe",
		"[",
		"[]",
		"[ ]\nsecret_id=a",
		"[prod",
		"[prod]]\nsecret_key=" + hostileSecret,
		"secret_id=AKIDglobal\nsecret_key=" + hostileSecret,
		"[prod]\nsecret_id\nsecret_key=" + hostileSecret,
		"[prod]\n=" + hostileSecret,
		"[prod]\nsecret_id=AKID\nsecret_key=" + hostileSecret + "\n[prod]\nsecret_id=AKID2\nsecret_key=x",
		"[prod]\nsecret_id=AKID\nsecret_id=" + hostileSecret,
		"[prod]\nsecret_id=\nsecret_key=" + hostileSecret,
		"[prod]\r\nsecret_id = AKIDcrlf\r\nsecret_key = " + hostileSecret + "\r\n",
		strings.Repeat("[a]\n", 1000),
		`{"secretId":"AKID","secretKey":"` + hostileSecret + `"`,
		`{"secretId":7,"secretKey":"` + hostileSecret + `"}`,
		`{"secretId":"AKID","secretKey":"` + hostileSecret + `","type":"oauth","expiresAt":{"x":1}}`,
		`{"secretId":"AKID","secretKey":"` + hostileSecret + `","type":"oauth","expiresAt":-5}`,
		`{"secretId":"AKID","secretKey":"` + hostileSecret + `","type":"magic"}`,
		`["secretId"]`,
		`null`,
		strings.Repeat("x", maxCredentialFileSize+1),
	}
	for i, content := range contents {
		for _, file := range []string{".tencentcloud/credentials", ".tccli/prod.credential"} {
			t.Run(fmt.Sprintf("%d/%s", i, filepath.Base(file)), func(t *testing.T) {
				home := clearCredentialEnv(t)
				writeHomeFiles(t, home, map[string]string{file: content})
				got, err := LoadIdentity(CredentialConfig{Profile: "prod"})
				if err != nil {
					if strings.Contains(err.Error(), hostileSecret) {
						t.Errorf("LoadIdentity() error %q shows the secret key", err)
					}
					return
				}
				if got.Credential.SecretID == "" || got.Credential.SecretKey == "" {
					t.Errorf("LoadIdentity() = %v with no error, want a complete key", got)
				}
			})
		}
	}
}

// FuzzParseINI checks that no credentials file makes the parsers panic and
// that a profile found always has a complete key.
func FuzzParseINI(f *testing.F) {
	for _, seed := range []string{
		"[default]\nsecret_id = AKID\nsecret_key = key\n",
		"[prod]\nsecret_id=a\n[default]\nsecret_id=b\nsecret_key=c",
		"# c\n; c\n[default\n",
		`{"secretId":"AKID","secretKey":"k","type":"oauth","expiresAt":1700000000}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, found, err := sdkProfile(data, "credentials", DefaultProfile); err == nil && found && (p.cred.SecretID == "" || p.cred.SecretKey == "") {
			t.Errorf("sdkProfile(%q) = %+v, want a complete key", data, p.cred)
		}
		if p, err := tccliProfile(data, "default.credential", DefaultProfile); err == nil && (p.cred.SecretID == "" || p.cred.SecretKey == "") {
			t.Errorf("tccliProfile(%q) = %+v, want a complete key", data, p.cred)
		}
	})
}

func TestIdentityString(t *testing.T) {
	t.Parallel()
	cred := Credential{SecretID: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", SecretKey: testSecretKey, Token: "tok-NEVER-PRINTED"}
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{Credential: Credential{SecretID: cred.SecretID, SecretKey: cred.SecretKey}, Source: "environment"}, "environment, SecretId AKID…MPLE"},
		{Identity{Credential: cred, Source: "profile prod in /root/.tencentcloud/credentials"}, "profile prod in /root/.tencentcloud/credentials, SecretId AKID…MPLE (temporary)"},
		{
			Identity{Credential: Credential{SecretID: "AKIDshort", SecretKey: "k"}, Source: "tccli profile x in /root/.tccli/x.credential", Role: Role{ARN: "qcs::cam::uin/100001:roleName/reset", SessionName: "s1"}},
			"role qcs::cam::uin/100001:roleName/reset via STS, session s1, assumed with SecretId AK… from tccli profile x in /root/.tccli/x.credential",
		},
	}
	for _, tt := range tests {
		if got := tt.id.String(); got != tt.want {
			t.Errorf("Identity.String() = %q, want %q", got, tt.want)
		}
	}

	id := Identity{Credential: cred, Source: "environment", Role: Role{ARN: "qcs::cam::uin/1:roleName/x", SessionName: "s"}}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		fmt.Fprintf(&out, verb+"\n", id)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("start", "identity", id)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("start", "identity", id)
	for _, secret := range []string{testSecretKey, cred.Token, cred.SecretID} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output contains %q:\n%s", secret, out.String())
		}
	}
	if !strings.Contains(out.String(), "AKID…MPLE") {
		t.Errorf("output does not show the masked ID:\n%s", out.String())
	}
}
