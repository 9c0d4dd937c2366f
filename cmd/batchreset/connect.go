package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/batchreset/batchreset/hoststate"
	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
)

// credentialInfo is who a command acts as: the key it signs with, where it
// came from, and the role assumed with it. Its String names the account for
// banners and prompts, never a secret.
type credentialInfo struct {
	id lighthouse.Identity
}

func (c credentialInfo) String() string { return c.id.String() }

// credential loads who the command acts as: the emulator's own key, or the
// user's, from the credential chain (see lighthouse.LoadIdentity).
func (a *app) credential(api apiFlags) (credentialInfo, error) {
	if api.emulate {
		return credentialInfo{id: lighthouse.Identity{Credential: emulatorCredential(), Source: "the built-in emulator"}}, nil
	}
	id, err := lighthouse.LoadIdentity(lighthouse.CredentialConfig{
		Profile: api.profile, RoleARN: api.roleARN, RoleSessionName: api.roleSession,
	})
	if err != nil {
		if !strings.Contains(err.Error(), lighthouse.EnvSecretID) {
			err = fmt.Errorf("%w (set %s and %s, or name a profile with --profile)", err, lighthouse.EnvSecretID, lighthouse.EnvSecretKey)
		}
		return credentialInfo{}, &exitError{code: exitFatal, err: err}
	}
	return credentialInfo{id: id}, nil
}

// connection is how a command reaches the API: a client for reads and one
// for resets, each with connections of its own, so that a sender holding
// its rate slot never waits for a connection a read is using; the identity
// its calls are charged to; and the rate limits every process on this host
// shares for that identity.
type connection struct {
	reads, sends *lighthouse.Client
	emu          *emulatorHandle
	endpoint     string // normalised
	identity     runner.Identity
	stateDir     string // this host's shared state for the identity
	privateState string // with the built-in emulator: the state's root, removed by Close
	hostLimits   *runner.HostLimits
	registry     *csvstore.Registry // opened by hold
	holds        *csvstore.Holds    // this run's, taken by hold
}

// hold opens the host's registry of instances held by runs for the
// account, makes this process one of src's run, and holds every instance of
// the run that no other run holds: a run holds its instances from its
// start to its end. The runner asks the returned Holds before every save.
func (c *connection) hold(ctx context.Context, src jobSource, log *slog.Logger) (*csvstore.Holds, error) {
	key, name, err := src.RunKey(ctx)
	if err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	reg, err := csvstore.OpenRegistry(filepath.Join(c.stateDir, "registry"), log)
	if err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	c.registry = reg
	h, err := reg.Begin(key, name, src.StartedAt())
	if err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	c.holds = h
	parent, err := src.ParentKey(ctx)
	if err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	if parent != "" {
		h.Inherit(parent)
	}
	var held, all int
	var first error
	err = src.Each(ctx, func(j *store.Job) error {
		all++
		err := h.Hold(j.InstanceID)
		if errors.Is(err, store.ErrHeld) {
			held++
			if first == nil {
				first = fmt.Errorf("%s: %w", j.InstanceID, err)
			}
			return nil
		}
		return err
	})
	if err != nil {
		return nil, &exitError{code: exitFatal, err: fmt.Errorf("hold the run's instances: %w", err)}
	}
	if held > 0 {
		log.Warn("instances held by other runs are not reset by this one; each ends skipped (HeldByRun), naming its holder",
			"held", held, "instances", all, "first", first.Error())
	}
	return h, nil
}

// connect returns the connection: the real endpoint with cred, or an
// in-process emulator seeded from the jobs. It asks STS once who the calls
// are charged to (runner.ResolveIdentity), and opens the host's state for
// that identity under api.stateDir.
func (a *app) connect(ctx context.Context, api apiFlags, cred credentialInfo, jobs []store.Job, workers int) (*connection, error) {
	c := &connection{endpoint: api.endpoint}
	if api.emulate {
		emu, err := startEmulator("127.0.0.1:0", jobs, 0, api.emu, a.log)
		if err != nil {
			return nil, err
		}
		c.emu = emu
		cred.id.Credential = emu.cred
		if c.endpoint, err = lighthouse.NormalizeEndpoint(emu.endpoint); err != nil {
			c.Close()
			return nil, &exitError{code: exitFatal, err: err}
		}
		a.log.Info("emulator started", "endpoint", c.endpoint, "instances", len(jobs))
	}
	var err error
	for _, cl := range []struct {
		c     **lighthouse.Client
		conns int
	}{{&c.reads, 2 * workers}, {&c.sends, workers + 1}} {
		*cl.c, err = lighthouse.New(lighthouse.Config{
			Endpoint:            c.endpoint,
			Credential:          cred.id.Credential,
			Role:                cred.id.Role,
			Timeout:             api.timeout,
			MaxIdleConnsPerHost: cl.conns,
		})
		if err != nil {
			c.Close()
			return nil, usageError("%v", err)
		}
	}
	root := api.stateDir
	if api.emulate {
		// The built-in emulator is this process's alone: no other process
		// shares its limits or its instances, so its state is private and
		// goes with the process.
		if c.privateState, err = os.MkdirTemp("", "batchreset-emulator-"); err != nil {
			c.Close()
			return nil, &exitError{code: exitFatal, err: err}
		}
		root = c.privateState
	}
	if err := c.resolveIdentity(ctx, root, cred, a.log); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// resolveIdentity asks STS who the calls are charged to and opens the
// host's state of that identity. The question itself is spaced by limits
// every process on the host shares for the endpoint, whoever calls: before
// the answer, no narrower identity is known, and a wider one only spaces
// calls more.
func (c *connection) resolveIdentity(ctx context.Context, root string, cred credentialInfo, log *slog.Logger) error {
	fatal := func(err error) error { return &exitError{code: exitFatal, err: err} }
	anyone, err := hoststate.Open(root, runner.Identity{Endpoint: c.endpoint}.Key())
	if err != nil {
		return fatal(err)
	}
	limits, err := runner.NewHostLimits(filepath.Join(anyone, "limits"))
	if err != nil {
		return fatal(err)
	}
	probe, err := runner.NewCloud(runner.CloudConfig{API: c.reads, Shared: limits, Logger: log})
	if err != nil {
		return fatal(err)
	}
	// Without an answer, the identity is the key's (a role's temporary
	// keys change; the long-term key and the role do not).
	key := cred.id.Credential.SecretID + "\x00" + cred.id.Role.ARN
	if c.identity, err = runner.ResolveIdentity(ctx, probe, c.endpoint, key, log); err != nil {
		return fatal(err)
	}
	if c.stateDir, err = hoststate.Open(root, c.identity.Key()); err != nil {
		return fatal(err)
	}
	if c.hostLimits, err = runner.NewHostLimits(filepath.Join(c.stateDir, "limits")); err != nil {
		return fatal(err)
	}
	log.Info("rate limits shared", "identity", c.identity, "state_dir", c.stateDir)
	return nil
}

// limits returns the rate limits a command on src shares: those of every
// process on this host for the identity, and with a database those of
// every runner on it too (runner.HostLimits.Over).
func (c *connection) limits(db *postgres.Store) runner.SharedLimits {
	if db == nil {
		return c.hostLimits
	}
	return c.hostLimits.Over(db.Limits(c.identity.Key()))
}

// cloud returns the Cloud every call of a command goes through, with the
// limits shared (see limits).
func (c *connection) cloud(src jobSource, rate, describeRate float64) (*runner.Cloud, error) {
	cl, err := runner.NewCloud(runner.CloudConfig{API: c.reads, Sender: c.sends, Rate: rate, DescribeRate: describeRate, Shared: c.limits(src.DB())})
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
	if c.holds != nil {
		c.holds.End()
	}
	if c.registry != nil {
		c.registry.Close()
	}
	if c.privateState != "" {
		os.RemoveAll(c.privateState)
	}
}
