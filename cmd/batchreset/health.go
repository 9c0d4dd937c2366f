package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// envPassword names the variable that may hold the run-wide password of the
// default user; --password-file is the other way. Never a flag: a flag's
// value is in the shell history and in every process listing.
const envPassword = "BATCHRESET_PASSWORD"

// maxPasswordFile bounds what --password-file reads: a password is at most
// 30 characters.
const maxPasswordFile = 4 << 10

// loginFlags are the run-wide login settings of `run` and `plan`.
type loginFlags struct {
	keyIDs       []string
	passwordFile string
	autoPassword bool
}

func (o *loginFlags) add(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.keyIDs, "key-ids", nil, "key pairs (lhkp-…, comma or ; separated, at most 5) each reset binds, for jobs whose key_ids column is empty")
	fs.StringVar(&o.passwordFile, "password-file", "", "file holding the default user's password to set on each reset (or env "+envPassword+"); never given on the command line")
	fs.BoolVar(&o.autoPassword, "auto-generate-password", false, "have each reset generate the default user's password (AutoGeneratePassword YES)")
}

// resolve returns the run-wide Login: at most one of key pairs, a password
// (from the file, else the environment) and a generated password. Errors
// never show the password.
func (o *loginFlags) resolve(getenv func(string) string) (runner.Login, error) {
	var l runner.Login
	for _, v := range o.keyIDs {
		for _, id := range strings.Split(v, store.KeyIDSeparator) {
			id = strings.TrimSpace(id)
			if !keyIDPattern(id) {
				return runner.Login{}, usageError("--key-ids: malformed key pair ID %q (want lhkp- and 8 lowercase letters or digits)", id)
			}
			l.KeyIDs = append(l.KeyIDs, id)
		}
	}
	l.AutoGeneratePassword = o.autoPassword
	switch {
	case o.passwordFile != "":
		b, err := readSmallFile(o.passwordFile, maxPasswordFile)
		if err != nil {
			return runner.Login{}, usageError("--password-file: %v", err)
		}
		l.Password = strings.TrimRight(string(b), "\r\n")
		if l.Password == "" {
			return runner.Login{}, usageError("--password-file %s is empty", o.passwordFile)
		}
	case getenv(envPassword) != "":
		l.Password = getenv(envPassword)
	}
	if err := l.Validate(); err != nil {
		return runner.Login{}, usageError("give one of --key-ids, --password-file (or %s) and --auto-generate-password: %v", envPassword, err)
	}
	return l, nil
}

// keyIDPattern reports whether id looks like a key pair ID.
func keyIDPattern(id string) bool {
	if len(id) != len("lhkp-")+8 || !strings.HasPrefix(id, "lhkp-") {
		return false
	}
	for _, c := range id[len("lhkp-"):] {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// healthFlags are `run`'s health check after each reset.
type healthFlags struct {
	health  string
	timeout time.Duration
	bake    time.Duration
}

func (o *healthFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.health, "health", "none", "after each reset: none; agent (the TAT agent is Online again); or command:FILE (then FILE exits 0 through TAT RunCommand: a shell script, or PowerShell for .ps1, batch for .bat). A job that fails it ends unhealthy")
	fs.DurationVar(&o.timeout, "health-timeout", runner.DefaultHealthTimeout, "how long a health check may take from the end of the reset before the job ends unhealthy")
	fs.DurationVar(&o.bake, "bake", 0, "after an instance is healthy, wait this long, check it again, and only then count it succeeded (the next wave waits for it)")
}

// resolve returns the Health of the flags, reading the command's script.
func (o *healthFlags) resolve() (runner.Health, error) {
	if o.timeout <= 0 {
		return runner.Health{}, usageError("--health-timeout must be positive, not %s", o.timeout)
	}
	if o.bake < 0 {
		return runner.Health{}, usageError("--bake must not be negative, not %s", o.bake)
	}
	h := runner.Health{Timeout: o.timeout, Bake: o.bake}
	mode, file, _ := strings.Cut(o.health, ":")
	switch {
	case o.health == "none":
	case o.health == "agent":
		h.Mode = runner.HealthAgent
	case mode == "command" && file != "":
		// RunCommand takes at most 64 KB of base64, 3 bytes in 4.
		b, err := readSmallFile(file, lighthouse.MaxCommandContent/4*3)
		if err != nil {
			return runner.Health{}, usageError("--health command: %v", err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return runner.Health{}, usageError("--health command: %s is empty", file)
		}
		h.Mode, h.Script, h.CommandType = runner.HealthCommand, b, commandType(file)
	default:
		return runner.Health{}, usageError("--health %q: want none, agent or command:FILE", o.health)
	}
	return h, nil
}

// commandType is how TAT runs the health command in file, by its name:
// PowerShell for .ps1, batch for .bat and .cmd (Windows instances), a
// shell script otherwise.
func commandType(file string) string {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".ps1":
		return lighthouse.CommandPowerShell
	case ".bat", ".cmd":
		return lighthouse.CommandBat
	}
	return lighthouse.CommandShell
}

// readSmallFile reads the file at path, refusing one over limit bytes. Its
// errors name the file, never its content.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, at most %d", path, st.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}
