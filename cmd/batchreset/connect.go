package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// credentialInfo is the key a command signs with and where it came from.
type credentialInfo struct {
	cred   lighthouse.Credential
	source string
}

// String names the account for banners and prompts: the masked SecretId
// and the credential's source, never the key.
func (c credentialInfo) String() string {
	return fmt.Sprintf("SecretId %s (%s)", maskID(c.cred.SecretID), c.source)
}

// maskID shows the first four and the last four characters of a SecretId.
func maskID(id string) string {
	if len(id) <= 8 {
		return strings.Repeat("*", len(id))
	}
	return id[:4] + "…" + id[len(id)-4:]
}

// credential loads the key the command signs with: the emulator's own, or
// the user's, saying where keys come from when none is found.
func (a *app) credential(api apiFlags) (credentialInfo, error) {
	if api.emulate {
		return credentialInfo{cred: emulatorCredential(), source: "built-in emulator"}, nil
	}
	cred, err := lighthouse.LoadCredential()
	if err != nil {
		if !strings.Contains(err.Error(), lighthouse.EnvSecretID) {
			// The SDK names only the profile file it could not read.
			err = fmt.Errorf("%w (set %s and %s, or name a profile file in %s)", err, lighthouse.EnvSecretID, lighthouse.EnvSecretKey, lighthouse.EnvCredentialsFile)
		}
		return credentialInfo{}, &exitError{code: exitFatal, err: err}
	}
	return credentialInfo{cred: cred, source: "environment or profile file"}, nil
}

// connection is how a command reaches the API: a client for reads and one
// for resets, each with connections of its own, so that a sender holding
// its rate slot never waits for a connection a read is using; and the rate
// limits every process on this host shares for the account.
type connection struct {
	reads, sends *lighthouse.Client
	emu          *emulatorHandle
	endpoint     string
	stateDir     string // this host's shared state for the account
	hostLimits   *runner.HostLimits
}

// guard makes a CSV source consult and keep the host's registry of
// instances in flight for the account.
func (c *connection) guard(src jobSource) error {
	cs, ok := src.(*csvSource)
	if !ok || cs.st == nil {
		return nil
	}
	reg, err := csvstore.OpenRegistry(filepath.Join(c.stateDir, "instances"))
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	cs.st.Guard(reg)
	return nil
}

// connect returns the connection: the real endpoint with cred, or an
// in-process emulator seeded from the jobs.
func (a *app) connect(api apiFlags, cred credentialInfo, jobs []store.Job, workers int) (*connection, error) {
	c := &connection{endpoint: api.endpoint}
	if api.emulate {
		emu, err := startEmulator("127.0.0.1:0", jobs, 0, api.emu, a.log)
		if err != nil {
			return nil, err
		}
		c.emu, c.endpoint = emu, emu.endpoint
		cred.cred = emu.cred
		a.log.Info("emulator started", "endpoint", c.endpoint, "instances", len(jobs))
	}
	var err error
	for _, cl := range []struct {
		c     **lighthouse.Client
		conns int
	}{{&c.reads, 2 * workers}, {&c.sends, workers + 1}} {
		*cl.c, err = lighthouse.New(lighthouse.Config{
			Endpoint:            c.endpoint,
			Credential:          cred.cred,
			Timeout:             api.timeout,
			MaxIdleConnsPerHost: cl.conns,
		})
		if err != nil {
			c.Close()
			return nil, usageError("%v", err)
		}
	}
	c.stateDir = runner.AccountDir(c.endpoint, cred.cred.SecretID)
	c.hostLimits, err = runner.NewHostLimits(filepath.Join(c.stateDir, "limits"))
	if err != nil {
		c.Close()
		return nil, &exitError{code: exitFatal, err: err}
	}
	return c, nil
}

// cloud returns the Cloud every call of a command goes through, with the
// limits shared (those of src, else the host's).
func (c *connection) cloud(src jobSource, rate, describeRate float64) (*runner.Cloud, error) {
	shared := src.Limits()
	if shared == nil {
		shared = c.hostLimits
	}
	cl, err := runner.NewCloud(runner.CloudConfig{API: c.reads, Sender: c.sends, Rate: rate, DescribeRate: describeRate, Shared: shared})
	if err != nil {
		return nil, usageError("%v", err)
	}
	return cl, nil
}

// Close closes the clients and stops the emulator.
func (c *connection) Close() {
	if c.reads != nil {
		c.reads.CloseIdleConnections()
	}
	if c.sends != nil {
		c.sends.CloseIdleConnections()
	}
	c.emu.Close()
}
