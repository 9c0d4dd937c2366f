package runner

import (
	"strings"
	"testing"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"one\n", "one"},
		{"1\n2\n3\n4\n5\n6\n7\n", "3 | 4 | 5 | 6 | 7"},
		{"a\tb\x1b[31m\n", "a b [31m"},
	} {
		if got := lastLines([]byte(tc.in)); got != tc.want {
			t.Errorf("lastLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := lastLines([]byte(strings.Repeat("x", 10_000))); len(got) > maxCommandOutput+len("…") {
		t.Errorf("lastLines kept %d bytes, want at most %d", len(got), maxCommandOutput)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("0123456789"))
	b.Write([]byte("ab"))
	if got := string(b.bytes()); got != "456789ab" {
		t.Errorf("tail = %q, want 456789ab", got)
	}
}

func TestRedact(t *testing.T) {
	r := &Runner{cfg: Config{Hooks: Hooks{Secrets: []string{"s3cr3t-key", "", "pw"}}}}
	if got := r.redact("key=s3cr3t-key pw=pw"); got != "key=[redacted] pw=pw" {
		t.Errorf("redact = %q", got)
	}
}

func TestHookBaseEnvDropsSecrets(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "hidden")
	t.Setenv("BATCHRESET_HOOK_TEST", "kept")
	r := &Runner{}
	env := strings.Join(r.hookBaseEnv(), "\n")
	if strings.Contains(env, "hidden") || !strings.Contains(env, "BATCHRESET_HOOK_TEST=kept") {
		t.Errorf("hook environment keeps the secret or drops the rest")
	}
}
