package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Environment variables. A webhook URL or a signing key on the command
// line is in ps for every local user; these, and the files of
// --notify-file and --notify-secret-file, keep them out of it.
const (
	// EnvURLs holds webhook URLs separated by white space (spaces, tabs or
	// newlines: a URL has none). Used when neither --notify nor
	// --notify-file is given.
	EnvURLs = "BATCHRESET_NOTIFY_URLS"
	// EnvSecret holds the signing key. --notify-secret-file wins over it.
	EnvSecret = "BATCHRESET_NOTIFY_SECRET"
)

// DefaultTimeout is the timeout of one notification attempt, and how long
// the end of a run waits for notifications still undelivered.
const DefaultTimeout = 10 * time.Second

// maxFile is the largest --notify-file or --notify-secret-file read.
const maxFile = 64 << 10

// Flags are the notification flags of run and retry. Config resolves them
// with the environment.
type Flags struct {
	urls       []string
	urlFile    string
	secretFile string
	format     string
	timeout    time.Duration
}

// AddFlags declares f's flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.urls, "notify", nil, "post a JSON event to this URL on the run's start, each wave's end, a stop, a pause or cancel, and its end (repeatable; visible in ps: prefer --notify-file or "+EnvURLs+")")
	fs.StringVar(&f.urlFile, "notify-file", "", "post notifications to the URLs of this file, one per line (# starts a comment line); env "+EnvURLs+" (URLs separated by white space) when neither this nor --notify is given")
	fs.StringVar(&f.secretFile, "notify-secret-file", "", "sign notifications with HMAC-SHA256 of the body, keyed by this file's content (header "+HeaderSignature+": sha256=HEX); env "+EnvSecret)
	fs.StringVar(&f.format, "notify-format", "json", "notification body: json, or slack (an incoming-webhook message)")
	fs.DurationVar(&f.timeout, "notify-timeout", DefaultTimeout, "timeout of one notification attempt, and how long the end of the run waits for undelivered ones")
}

// Config is where and how a run's notifications are sent: the flags
// resolved with the environment and the files they name.
type Config struct {
	// Destinations are the URLs posted to; none means no notifications.
	Destinations []Destination
	// Signer signs each body (header HeaderSignature); nil: unsigned.
	Signer *Signer
	// Slack sends Slack incoming-webhook messages instead of JSON events.
	Slack bool
	// Timeout bounds one attempt, and the wait at the end of the run.
	Timeout time.Duration
}

// Config checks f, reads the files it names and applies the environment
// (getenv): --notify and --notify-file together, else EnvURLs; the secret
// of --notify-secret-file, else EnvSecret. Its errors name where a bad
// URL came from and never quote the URL.
func (f *Flags) Config(getenv func(string) string) (Config, error) {
	c := Config{Slack: f.format == "slack", Timeout: f.timeout}
	if f.format != "json" && f.format != "slack" {
		return Config{}, fmt.Errorf("--notify-format must be json or slack, not %q", f.format)
	}
	if f.timeout <= 0 {
		return Config{}, fmt.Errorf("--notify-timeout must be positive, not %s", f.timeout)
	}
	var err error
	if c.Destinations, err = f.destinations(getenv); err != nil {
		return Config{}, err
	}
	switch {
	case f.secretFile != "":
		if len(c.Destinations) == 0 {
			return Config{}, errors.New("--notify-secret-file needs a URL to notify (--notify-file, " + EnvURLs + " or --notify)")
		}
		b, err := readFile(f.secretFile)
		if err != nil {
			return Config{}, fmt.Errorf("--notify-secret-file: %w", err)
		}
		key := bytes.TrimSpace(b)
		if len(key) == 0 {
			return Config{}, fmt.Errorf("--notify-secret-file %s is empty", f.secretFile)
		}
		c.Signer = &Signer{key: key}
	case len(c.Destinations) > 0 && strings.TrimSpace(getenv(EnvSecret)) != "":
		c.Signer = &Signer{key: []byte(strings.TrimSpace(getenv(EnvSecret)))}
	}
	return c, nil
}

// destinations parses the URLs of the flags, else of the environment. A
// URL given twice is an error: it would be posted every event twice.
func (f *Flags) destinations(getenv func(string) string) ([]Destination, error) {
	var ds []Destination
	add := func(raw, from string, argv bool) error {
		d, err := parseDestination(raw, from)
		if err != nil {
			return err
		}
		d.argv = argv
		for _, o := range ds {
			if o.same(d) {
				return fmt.Errorf("%s: %s is given twice", from, d)
			}
		}
		ds = append(ds, d)
		return nil
	}
	for i, raw := range f.urls {
		if err := add(raw, fmt.Sprintf("--notify #%d", i+1), true); err != nil {
			return nil, err
		}
	}
	if f.urlFile != "" {
		b, err := readFile(f.urlFile)
		if err != nil {
			return nil, fmt.Errorf("--notify-file: %w", err)
		}
		n := len(ds)
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(line, fmt.Sprintf("--notify-file %s:%d", f.urlFile, i+1), false); err != nil {
				return nil, err
			}
		}
		if len(ds) == n {
			return nil, fmt.Errorf("--notify-file %s has no URL", f.urlFile)
		}
	}
	if len(f.urls) > 0 || f.urlFile != "" {
		return ds, nil
	}
	for i, raw := range strings.Fields(getenv(EnvURLs)) {
		if err := add(raw, fmt.Sprintf("%s, URL %d", EnvURLs, i+1), false); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// readFile reads a small file; its errors name the file, never its content.
func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s is over %d bytes", path, maxFile)
	}
	return b, nil
}

// Signer signs notification bodies with a key: HMAC-SHA256, in hex. It
// keeps the key unexported and is held by pointer, so that printing a
// Config shows neither (fmt prints a nested pointer as its address).
type Signer struct {
	key []byte
}

// Sign returns the hex HMAC-SHA256 of body.
func (s *Signer) Sign(body []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
