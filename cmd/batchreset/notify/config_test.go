package notify

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestConfig maps flags, files and the environment to a Config: the URLs
// and where each came from, the secret, or an error that names the input
// and shows no secret.
func TestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	urls := file("urls", "# team hooks\n\nhttps://hooks.example/services/T0/B0/SECRETTOKEN\r\n  # the pager\n  https://user:pass@pager.example/x?token=SECRET  \nhttps://host:443/path/SECRET#frag\n")
	comments := file("comments", "# nothing here\n\n")
	dup := file("dup", "https://hooks.example/SECRET\nHTTPS://HOOKS.example/SECRET\n")
	bad := file("bad", "https://hooks.example/SECRET\nhttps://a.example/SECRET https://b.example/SECRET\n")
	key := file("key", "  k3y-SECRET\n")
	empty := file("empty", "\n")
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	type want struct {
		names  []string // the destinations' names
		argv   []bool   // which came from --notify
		secret string
		err    string // a part of the error
	}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want want
	}{
		{name: "None", want: want{}},
		{name: "Flag", args: []string{"--notify", "HTTPS://Hooks.Example/services/T0/B0/SECRETTOKEN", "--notify", "http://plain.example"},
			want: want{names: []string{"https://hooks.example/…", "http://plain.example"}, argv: []bool{true, true}}},
		{name: "File", args: []string{"--notify-file", urls},
			want: want{names: []string{"https://hooks.example/…", "https://pager.example/…", "https://host:443/…"}, argv: []bool{false, false, false}}},
		{name: "FlagAndFile", args: []string{"--notify", "https://other.example/SECRET", "--notify-file", urls},
			want: want{names: []string{"https://other.example/…", "https://hooks.example/…", "https://pager.example/…", "https://host:443/…"}, argv: []bool{true, false, false, false}}},
		{name: "Env", env: map[string]string{EnvURLs: " https://a.example/SECRET\thttps://b.example/SECRET\n\nhttps://user:pass@c.example?token=SECRET\n"},
			want: want{names: []string{"https://a.example/…", "https://b.example/…", "https://c.example/…"}, argv: []bool{false, false, false}}},
		{name: "FlagsWinOverEnv", args: []string{"--notify-file", urls}, env: map[string]string{EnvURLs: "https://env.example/SECRET"},
			want: want{names: []string{"https://hooks.example/…", "https://pager.example/…", "https://host:443/…"}, argv: []bool{false, false, false}}},
		{name: "EnvSecret", env: map[string]string{EnvURLs: "https://a.example/SECRET", EnvSecret: " k3y-SECRET\n"},
			want: want{names: []string{"https://a.example/…"}, argv: []bool{false}, secret: "k3y-SECRET"}},
		{name: "SecretFileWinsOverEnv", args: []string{"--notify-secret-file", key}, env: map[string]string{EnvURLs: "https://a.example/SECRET", EnvSecret: "other-SECRET"},
			want: want{names: []string{"https://a.example/…"}, argv: []bool{false}, secret: "k3y-SECRET"}},
		{name: "EnvSecretWithoutURLs", env: map[string]string{EnvSecret: "k3y-SECRET"}, want: want{}},

		{name: "SecretFileWithoutURLs", args: []string{"--notify-secret-file", key}, want: want{err: "--notify-secret-file needs a URL"}},
		{name: "EmptySecretFile", args: []string{"--notify-file", urls, "--notify-secret-file", empty}, want: want{err: "is empty"}},
		{name: "NoSecretFile", args: []string{"--notify-file", urls, "--notify-secret-file", filepath.Join(dir, "none")}, want: want{err: "no such file"}},
		{name: "FileWithoutURLs", args: []string{"--notify-file", comments}, want: want{err: "has no URL"}},
		{name: "NoFile", args: []string{"--notify-file", filepath.Join(dir, "none")}, want: want{err: "no such file"}},
		{name: "Twice", args: []string{"--notify-file", dup}, want: want{err: dup + ":2: https://hooks.example/… is given twice"}},
		{name: "TwoOnALine", args: []string{"--notify-file", bad}, want: want{err: bad + ":2: https://a.example/… looks like several URLs"}},
		{name: "Malformed", args: []string{"--notify", "https://ok.example", "--notify", "https://ho st/SECRET"}, want: want{err: "--notify #2: (malformed URL)"}},
		{name: "NotHTTP", args: []string{"--notify", "ftp://files.example/SECRET"}, want: want{err: "--notify #1: ftp://files.example/… is not an http or https URL"}},
		{name: "NoHost", args: []string{"--notify", "https:///SECRET"}, want: want{err: "--notify #1: (malformed URL)"}},
		{name: "EnvMalformed", env: map[string]string{EnvURLs: "https://a.example/SECRET,https://b.example/SECRET"}, want: want{err: EnvURLs + ", URL 1: https://a.example/… looks like several URLs"}},
		{name: "Format", args: []string{"--notify-format", "xml"}, want: want{err: "--notify-format must be json or slack"}},
		{name: "Timeout", args: []string{"--notify-timeout", "0s"}, want: want{err: "--notify-timeout must be positive"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			var f Flags
			f.AddFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			getenv := getenv
			if c.env != nil {
				getenv = func(k string) string { return c.env[k] }
			}
			got, err := f.Config(getenv)
			if c.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.want.err) {
					t.Fatalf("Config() error = %v, want one containing %q", err, c.want.err)
				}
				for _, sec := range []string{"SECRET", "pass", "frag"} {
					if strings.Contains(err.Error(), sec) {
						t.Errorf("Config() error = %q: shows %q", err, sec)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Config() = %v", err)
			}
			var names []string
			var argv []bool
			for _, d := range got.Destinations {
				names, argv = append(names, d.String()), append(argv, d.argv)
			}
			if !slices.Equal(names, c.want.names) || !slices.Equal(argv, c.want.argv) {
				t.Errorf("Config() destinations = %v (argv %v), want %v (argv %v)", names, argv, c.want.names, c.want.argv)
			}
			var key string
			if got.Signer != nil {
				key = string(got.Signer.key)
			}
			if key != c.want.secret {
				t.Errorf("Config() signing key of %d bytes, want %d", len(key), len(c.want.secret))
			}
		})
	}
}
