package runner

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// Login is the run-wide login setting of every reset whose job names none
// of its own (store.Job.KeyIDs, AutoGeneratePassword): key pairs to bind, a
// password for the default user, or a password the API generates; at most
// one of the three. The zero value sends no LoginConfiguration, so the
// reset leaves login as it was (more-apis §1b). String, GoString and
// LogValue never show the password.
type Login struct {
	KeyIDs               []string
	AutoGeneratePassword bool
	// Password is the default user's password; it comes from a file or the
	// environment, never from a flag, a jobs file or the database.
	Password string
}

// String describes l without its password.
func (l Login) String() string {
	switch {
	case len(l.KeyIDs) > 0:
		return "key pairs " + strings.Join(l.KeyIDs, ", ")
	case l.AutoGeneratePassword:
		return "a generated password"
	case l.Password != "":
		return "a password (not shown)"
	}
	return "unchanged"
}

// GoString is String, so that %#v does not print the password either.
func (l Login) GoString() string { return l.String() }

// LogValue is String.
func (l Login) LogValue() slog.Value { return slog.StringValue(l.String()) }

// Validate reports a Login the API would refuse whatever the instance:
// more than one way to log in, or too many key pairs.
func (l Login) Validate() error {
	n := 0
	for _, set := range []bool{len(l.KeyIDs) > 0, l.AutoGeneratePassword, l.Password != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return fmt.Errorf("login: key pairs, a password and a generated password exclude each other")
	case len(l.KeyIDs) > store.MaxKeyIDs:
		return fmt.Errorf("login: %d key pairs, at most %d", len(l.KeyIDs), store.MaxKeyIDs)
	}
	return nil
}

// loginFor returns the LoginConfiguration of j's reset: the job's own
// setting, else the run's, else nil (none sent).
func loginFor(j store.Job, run Login) *lighthouse.LoginConfiguration {
	switch {
	case len(j.KeyIDs) > 0:
		return &lighthouse.LoginConfiguration{KeyIDs: j.KeyIDs}
	case j.AutoGeneratePassword:
		return &lighthouse.LoginConfiguration{AutoGeneratePassword: lighthouse.AutoGeneratePasswordYes}
	case len(run.KeyIDs) > 0:
		return &lighthouse.LoginConfiguration{KeyIDs: run.KeyIDs}
	case run.AutoGeneratePassword:
		return &lighthouse.LoginConfiguration{AutoGeneratePassword: lighthouse.AutoGeneratePasswordYes}
	case run.Password != "":
		return &lighthouse.LoginConfiguration{Password: run.Password}
	}
	return nil
}

// resetRequest is the ResetInstance request for j.
func resetRequest(j store.Job, run Login) lighthouse.ResetInstanceRequest {
	return lighthouse.ResetInstanceRequest{InstanceID: j.InstanceID, BlueprintID: j.BlueprintID, LoginConfiguration: loginFor(j, run)}
}

// CheckLogin returns why the login setting lc (nil: none) certainly makes
// the reset of j fail, given the instance, the target blueprint (nil when j
// keeps its image or the lookup failed) and which key pairs j's region has
// (keys; a key pair missing from it was not looked up and passes), or "".
// The answer never quotes the password.
func CheckLogin(j store.Job, lc *lighthouse.LoginConfiguration, in *lighthouse.Instance, bp *lighthouse.Blueprint, keys map[string]bool) string {
	if lc == nil {
		return ""
	}
	for _, id := range lc.KeyIDs {
		if found, asked := keys[id]; asked && !found {
			return fmt.Sprintf("key pair %s not found in region %s", id, j.Region)
		}
	}
	platform := ""
	if in != nil {
		platform = in.PlatformType
	}
	if j.BlueprintID != "" && bp != nil && bp.PlatformType != "" {
		platform = bp.PlatformType
	}
	if len(lc.KeyIDs) > 0 && platform == "WINDOWS" {
		return "key pairs cannot be bound to a WINDOWS instance"
	}
	if lc.Password != "" && platform != "" {
		if why := passwordProblem(lc.Password, platform); why != "" {
			return "password refused for a " + platform + " instance: " + why
		}
	}
	return ""
}

// passwordSpecials are the special characters a password may hold
// (ResetInstance's LoginConfiguration.Password).
const passwordSpecials = "()`~!@#$%^&*-+=_|{}[]:;'<>,.?/"

// passwordProblem returns why password breaks ResetInstance's rules for
// platform (LINUX_UNIX: 8 to 30 characters, WINDOWS 12 to 30; at least
// three of lower case, upper case, digits and passwordSpecials; no leading
// /), or "". The answer never quotes the password.
func passwordProblem(password, platform string) string {
	minLen := 8
	if platform == "WINDOWS" {
		minLen = 12
	}
	if n := len(password); n < minLen || n > 30 {
		return fmt.Sprintf("it must be %d to 30 characters long", minLen)
	}
	if strings.HasPrefix(password, "/") {
		return "it must not start with /"
	}
	var kinds [4]bool
	for _, r := range password {
		switch {
		case r >= 'a' && r <= 'z':
			kinds[0] = true
		case r >= 'A' && r <= 'Z':
			kinds[1] = true
		case r >= '0' && r <= '9':
			kinds[2] = true
		case strings.ContainsRune(passwordSpecials, r):
			kinds[3] = true
		default:
			return "it may hold only letters, digits and " + passwordSpecials
		}
	}
	n := 0
	for _, k := range kinds {
		if k {
			n++
		}
	}
	if n < 3 {
		return "it must hold at least three of lower-case letters, upper-case letters, digits and special characters"
	}
	return ""
}

// preflightKeyPairs looks up the key pairs the resets of tasks would bind,
// by region: which of them each region has. A region whose lookup failed
// is left out (its key pairs pass; the API decides when the reset is sent).
func (r *Runner) preflightKeyPairs(ctx context.Context, tasks []*task) map[string]map[string]bool {
	ids := map[string][]string{}
	for _, t := range tasks {
		if lc := loginFor(t.job, r.cfg.Login); t.kind == kindClaimed && lc != nil {
			ids[t.job.Region] = append(ids[t.job.Region], lc.KeyIDs...)
		}
	}
	out := map[string]map[string]bool{}
	for region, keyIDs := range ids {
		if len(keyIDs) == 0 {
			continue
		}
		found, err := r.cloud.KeyPairs(ctx, region, keyIDs)
		if err != nil {
			r.log.Warn("describe key pairs for preflight", "region", region, "err", err)
			continue
		}
		out[region] = found
	}
	return out
}

// loginProblem reports whether ae, a fatal answer to j's reset, refuses
// the login setting for this instance alone: key pairs on a Windows
// instance come back as InvalidParameterCombination, which otherwise says
// the request itself is malformed. One such row does not stop the fleet.
func loginProblem(ae *lighthouse.APIError, j store.Job, run Login) bool {
	lc := loginFor(j, run)
	return ae.Code == "InvalidParameterValue.InvalidParameterCombination" && lc != nil && len(lc.KeyIDs) > 0
}
