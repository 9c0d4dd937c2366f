package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// spellings are webhook URLs as operators type them, with the parts that
// must never be shown and the name they are shown by.
var spellings = []struct {
	raw     string
	secrets []string
	name    string
}{
	{"HTTPS://hooks.example/services/T0/B0/SECRETTOKEN", []string{"SECRETTOKEN", "services/T0"}, "https://hooks.example/…"},
	{"https://user:pass@host/x?token=SECRET", []string{"user", "pass", "SECRET", "token="}, "https://host/…"},
	{"https://host:443/path/SECRET#frag", []string{"SECRET", "frag", "/path"}, "https://host:443/…"},
	{"https://Hooks.Slack.COM/services/T000/B000/XXXXSECRET", []string{"XXXXSECRET", "T000"}, "https://hooks.slack.com/…"},
	{"hTTp://UsEr:PaSs@Host.Example:8080/A/SECRET?sig=SECRET2#FRAG", []string{"UsEr", "PaSs", "SECRET", "SECRET2", "FRAG"}, "http://host.example:8080/…"},
	{"https://host/%53ECRET", []string{"%53ECRET", "SECRET"}, "https://host/…"},
	{"https://tok3n@host", []string{"tok3n"}, "https://host/…"},
	{"https://host/", nil, "https://host"},
	{"https://host", nil, "https://host"},
}

// TestRedact: each spelling shows as its lower-case scheme and host, with
// none of its secret parts; a URL that does not parse shows nothing of it.
func TestRedact(t *testing.T) {
	t.Parallel()
	for _, c := range spellings {
		got := redact(c.raw)
		if got != c.name {
			t.Errorf("redact(%q) = %q, want %q", c.raw, got, c.name)
		}
		d, err := parseDestination(c.raw, "test")
		if err != nil {
			t.Fatalf("parseDestination(%q): %v", c.raw, err)
		}
		for _, s := range []string{d.String(), d.GoString(), d.LogValue().String(), fmt.Sprintf("%v %+v %#v", d, d, d)} {
			if s != c.name && !strings.Contains(s, c.name) {
				t.Errorf("%q printed as %q, want %q", c.raw, s, c.name)
			}
			for _, sec := range c.secrets {
				if strings.Contains(s, sec) {
					t.Errorf("%q printed as %q: shows %q", c.raw, s, sec)
				}
			}
		}
	}
	for _, raw := range []string{"https://ho st/SECRET", "http://[::1/SECRET", "https://host:port/SECRET", "%zzSECRET", "SECRET"} {
		if got := redact(raw); got != malformedURL {
			t.Errorf("redact(%q) = %q, want %q", raw, got, malformedURL)
		}
		_, err := parseDestination(raw, "the 1st --notify")
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.HasPrefix(err.Error(), "the 1st --notify: ") {
			t.Errorf("parseDestination(%q) = %v, want an error naming where it came from and nothing of it", raw, err)
		}
	}
}

// TestScrub: an error that quotes the URL in any spelling (as net/http's
// do, canonical and with the password as ***) is rebuilt around the name.
func TestScrub(t *testing.T) {
	t.Parallel()
	for _, c := range spellings {
		d, err := parseDestination(c.raw, "test")
		if err != nil {
			t.Fatal(err)
		}
		cause := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
		for _, in := range []error{
			&url.Error{Op: "Post", URL: d.url.Redacted(), Err: cause},
			&url.Error{Op: "Post", URL: d.url.String(), Err: cause},
			fmt.Errorf("wrapped: %w", &url.Error{Op: "Post", URL: c.raw, Err: cause}),
			fmt.Errorf("sending to %s (%s) failed", c.raw, d.url.String()),
		} {
			got := d.scrub(in).Error()
			for _, sec := range c.secrets {
				if strings.Contains(got, sec) {
					t.Errorf("scrub(%q) = %q: shows %q", in, got, sec)
				}
			}
			if _, ok := errors.AsType[*url.Error](in); ok && got != "Post "+c.name+": "+cause.Error() {
				t.Errorf("scrub(%q) = %q, want the operation, %s and the cause", in, got, c.name)
			}
		}
	}
}

// TestSignerPrints: a Config prints without its signing key however it
// is formatted or logged.
func TestSignerPrints(t *testing.T) {
	t.Parallel()
	c := Config{Signer: &Signer{key: []byte("k3y-SECRET")}}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "config", c)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("config", "config", c)
	out := b.String() + fmt.Sprintf("%v %+v %#v", c, c, c)
	for _, s := range []string{"k3y-SECRET", fmt.Sprintf("%x", "k3y-SECRET"), fmt.Sprint([]byte("k3y-SECRET"))} {
		if strings.Contains(out, s) {
			t.Errorf("the key was printed: %s", out)
		}
	}
}
