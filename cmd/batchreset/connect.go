package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
// the run (of only those jobs, when only is not nil) that no other run
// holds: a run holds its instances from its start to its end. The runner
// asks the returned Holds before every save.
func (c *connection) hold(ctx context.Context, src jobSource, only func(*store.Job) bool, log *slog.Logger) (*csvstore.Holds, error) {
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
		if only != nil && !only(j) {
			return nil
		}
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
	conns, err := a.connectAccounts(ctx, api, []accountConn{{cred: cred}}, jobs, workers)
	if err != nil {
		return nil, err
	}
	return conns[0].conn, nil
}

// accountConn is the connection of one account of a run; def.name is ""
// for the run's own credential.
type accountConn struct {
	def  accountDef
	cred credentialInfo
	conn *connection
}

// connectAccounts returns accounts, each with its connection, as connect
// makes one: each with its own credential, identity, limits and host
// state. The account named "" is the run's own credential. With api.emulate, one
// emulator serves them all, each account the jobs name an emulated account
// of its own (see startEmulator): an account defined by a profile signs
// with its emulated account's key, one defined by a role assumes that role
// in it with the run's key.
func (a *app) connectAccounts(ctx context.Context, api apiFlags, accounts []accountConn, jobs []store.Job, workers int) ([]accountConn, error) {
	var out []accountConn
	closeAll := func() { closeAccounts(out) }
	endpoint, root := api.endpoint, api.stateDir
	var emu *emulatorHandle
	var private string
	if api.emulate {
		roles := map[string]string{}
		for _, ac := range accounts {
			roles[ac.def.name] = ac.def.roleARN
		}
		var err error
		if emu, err = startEmulator("127.0.0.1:0", jobs, 0, roles, api.emu, a.log); err != nil {
			return nil, err
		}
		if endpoint, err = lighthouse.NormalizeEndpoint(emu.endpoint); err != nil {
			emu.Close()
			return nil, &exitError{code: exitFatal, err: err}
		}
		a.log.Info("emulator started", "endpoint", endpoint, "instances", len(jobs), "accounts", 1+len(emu.accounts))
		// The built-in emulator is this process's alone: no other process
		// shares its limits or its instances, so its state is private and
		// goes with the process.
		if private, err = os.MkdirTemp("", "batchreset-emulator-"); err != nil {
			emu.Close()
			return nil, &exitError{code: exitFatal, err: err}
		}
		root = private
	}
	for i, ac := range accounts {
		d := ac.def
		switch {
		case emu == nil:
		case d.name == "":
			ac.cred.id.Credential = emu.cred
		case d.roleARN != "":
			ac.cred.id = lighthouse.Identity{Credential: emu.cred, Source: "the built-in emulator", Role: lighthouse.Role{ARN: d.roleARN, SessionName: api.roleSession}}
		default:
			e, _ := emu.account(d.name)
			ac.cred.id = lighthouse.Identity{Credential: e.cred, Source: fmt.Sprintf("the built-in emulator's account %s (UIN %s)", d.name, e.uin)}
		}
		c := &connection{endpoint: endpoint}
		if i == 0 {
			// The first connection owns what the others share.
			c.emu, c.privateState = emu, private
		}
		out = append(out, accountConn{def: ac.def, cred: ac.cred, conn: c})
		if err := c.dial(ctx, api, root, ac.cred, workers, a.log); err != nil {
			closeAll()
			return nil, err
		}
	}
	return out, nil
}

// closeAccounts closes the connections of accounts, the first (which owns
// the emulator and its state) last.
func closeAccounts(accounts []accountConn) {
	for _, ac := range slices.Backward(accounts) {
		ac.conn.Close()
	}
}

// dial makes c's clients with cred and resolves its identity, opening the
// host's state under root.
func (c *connection) dial(ctx context.Context, api apiFlags, root string, cred credentialInfo, workers int, log *slog.Logger) error {
	for _, cl := range []struct {
		c     **lighthouse.Client
		conns int
	}{{&c.reads, 2 * workers}, {&c.sends, workers + 1}} {
		var err error
		*cl.c, err = lighthouse.New(lighthouse.Config{
			Endpoint:            c.endpoint,
			Credential:          cred.id.Credential,
			Role:                cred.id.Role,
			Timeout:             api.timeout,
			MaxIdleConnsPerHost: cl.conns,
		})
		if err != nil {
			return usageError("%v", err)
		}
	}
	return c.resolveIdentity(ctx, root, cred, log)
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
	log.Info("rate limits shared", "identity", c.identity, "credential", cred.id, "state_dir", c.stateDir)
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
