package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
)

// account is the state of one account the emulator serves: what its calls
// can see. Everything but the instances' state and tasks is fixed at New.
type account struct {
	uin, name string
	users     map[string]string // SecretId to sub-user UIN

	instances  map[string]*instance
	all        []*instance // in configuration order
	byRegion   map[string][]*instance
	blueprints []*blueprint // every public blueprint and the account's own, in configuration order
	keyPairs   map[string]*KeyPair

	// tasks and taskByID are the account's TAT tasks, guarded by Server.mu.
	tasks    []*task
	taskByID map[string]*task
}

// LogValue logs the account as its UIN and, when it has one, its name.
func (a *account) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("uin", a.uin)}
	if a.name != "" {
		attrs = append(attrs, slog.String("name", a.name))
	}
	return slog.GroupValue(attrs...)
}

// permanentKey is a long-term SecretKey and the account it belongs to.
type permanentKey struct {
	secret string
	acct   *account
}

// accounts returns the accounts cfg describes, its own first.
func (cfg Config) accounts() []Account {
	own := Account{UIN: orDefault(cfg.UIN, defaultUIN), Credentials: cfg.Credentials, Users: cfg.Users, Roles: cfg.Roles,
		Instances: cfg.Instances, Blueprints: cfg.Blueprints, KeyPairs: cfg.KeyPairs, Generate: cfg.Generate, Fleet: cfg.Fleet}
	return append([]Account{own}, cfg.Accounts...)
}

// configError places an error in the configuration: nothing for the
// first account, whose fields are Config's own, accounts[i-1] for the
// others.
func configError(i int, err error) error {
	if i == 0 {
		return err
	}
	return fmt.Errorf("accounts[%d]: %w", i-1, err)
}

// addAccounts builds the accounts specs describe, with the keys and roles
// that lead to them, and the regions they use. Blueprints come first: an
// account's instances may run a public image another account configures.
func (s *Server) addAccounts(specs []Account) error {
	s.accounts = make([]*account, len(specs))
	for i, spec := range specs {
		a, err := s.newAccount(spec)
		if err != nil {
			return configError(i, err)
		}
		s.accounts[i] = a
	}
	if len(s.keys) == 0 {
		return errors.New("no credentials")
	}
	var catalogue []*blueprint
	fleets := make([][]Instance, len(specs))
	for i, spec := range specs {
		instances, blueprints := spec.Instances, spec.Blueprints
		if spec.Generate > 0 {
			generated, gbs := GenerateFleet(spec.Generate, spec.Fleet)
			instances = append(slices.Clip(instances), generated...)
			blueprints = append(slices.Clip(blueprints), gbs...)
		}
		fleets[i] = instances
		var err error
		if catalogue, err = s.addBlueprints(catalogue, s.accounts[i], blueprints); err != nil {
			return configError(i, err)
		}
	}
	owners := make(map[string]*account)
	for i, a := range s.accounts {
		for _, b := range catalogue {
			if b.owner == nil || b.owner == a {
				a.blueprints = append(a.blueprints, b)
			}
		}
		if err := s.addKeyPairs(a, specs[i].KeyPairs, owners); err != nil {
			return configError(i, err)
		}
	}
	for i, a := range s.accounts {
		if err := s.addInstances(a, fleets[i], owners); err != nil {
			return configError(i, err)
		}
	}
	return nil
}

// newAccount checks spec's identity, keys and roles and registers them.
func (s *Server) newAccount(spec Account) (*account, error) {
	if !uinPattern.MatchString(spec.UIN) {
		return nil, fmt.Errorf("uin %q: not a number", spec.UIN)
	}
	for _, other := range s.accounts {
		if other != nil && other.uin == spec.UIN {
			return nil, fmt.Errorf("uin %s: duplicate account", spec.UIN)
		}
	}
	a := &account{uin: spec.UIN, name: spec.Name, users: maps.Clone(spec.Users), instances: make(map[string]*instance),
		byRegion: make(map[string][]*instance), keyPairs: make(map[string]*KeyPair), taskByID: make(map[string]*task)}
	for _, id := range slices.Sorted(maps.Keys(spec.Credentials)) {
		key := spec.Credentials[id]
		if id == "" || key == "" {
			return nil, errors.New("credentials: empty SecretId or SecretKey")
		}
		if other, ok := s.keys[id]; ok {
			return nil, fmt.Errorf("credentials: SecretId %q is also a key of account %s", id, other.acct.uin)
		}
		s.keys[id] = permanentKey{secret: key, acct: a}
	}
	for id, uin := range spec.Users {
		if _, ok := spec.Credentials[id]; !ok {
			return nil, fmt.Errorf("users: SecretId %q has no credential", id)
		}
		if !uinPattern.MatchString(uin) {
			return nil, fmt.Errorf("users: uin %q: not a number", uin)
		}
	}
	roles := spec.Roles
	if roles == nil {
		roles = []string{"qcs::cam::uin/" + spec.UIN + ":roleName/" + defaultRoleName}
	}
	if len(roles) == 0 && len(spec.Credentials) == 0 {
		return nil, errors.New("neither credentials nor roles: no call could reach the account")
	}
	for _, arn := range roles {
		if !roleARNPattern.MatchString(arn) {
			return nil, fmt.Errorf("role %q: malformed ARN", arn)
		}
		if other := s.roles[arn]; other != nil {
			return nil, fmt.Errorf("role %q: also a role of account %s", arn, other.uin)
		}
		s.roles[arn] = a
	}
	return a, nil
}

// addBlueprints adds a's blueprints to catalogue and returns it. A
// blueprint may share its ID with another only where no account sees both
// (in other regions, or PRIVATE or SHARED in other accounts); a public one
// another account configured the same way is that blueprint.
func (s *Server) addBlueprints(catalogue []*blueprint, a *account, blueprints []Blueprint) ([]*blueprint, error) {
	mine := len(catalogue) // catalogue[mine:] are a's
	for _, b := range blueprints {
		b, err := b.fill()
		if err != nil {
			return nil, err
		}
		bp := newBlueprint(b)
		if bp.private() {
			bp.owner = a
		}
		same := false
		for j, other := range catalogue {
			if other.ID != b.ID || other.Region != "" && b.Region != "" && other.Region != b.Region ||
				other.owner != nil && other.owner != a && bp.owner != nil {
				continue
			}
			if j >= mine || bp.owner != nil || other.owner != nil || other.Blueprint != b {
				return nil, fmt.Errorf("blueprint %s: duplicate ID", b.ID)
			}
			same = true
		}
		if same {
			continue
		}
		catalogue = append(catalogue, bp)
		if b.Region != "" {
			s.regions[b.Region] = true
		}
	}
	return catalogue, nil
}

// addKeyPairs adds a's key pairs; owners maps each key pair ID already
// added to its account.
func (s *Server) addKeyPairs(a *account, keyPairs []KeyPair, owners map[string]*account) error {
	for _, k := range keyPairs {
		k, err := k.fill()
		if err != nil {
			return err
		}
		if err := claim(owners, "key pair", k.ID, a); err != nil {
			return err
		}
		a.keyPairs[k.ID] = &k
		s.regions[k.Region] = true
	}
	return nil
}

// addInstances adds a's fleet; owners maps each instance ID already added
// to its account.
func (s *Server) addInstances(a *account, fleet []Instance, owners map[string]*account) error {
	for _, in := range fleet {
		var installed *Blueprint
		if bp := a.blueprintIn(orDefault(in.Region, defaultRegion), in.BlueprintID); bp != nil {
			installed = &bp.Blueprint
		}
		in, err := in.fill(installed)
		if err != nil {
			return err
		}
		if err := claim(owners, "instance", in.ID, a); err != nil {
			return err
		}
		for _, id := range in.KeyIDs {
			if k := a.keyPairs[id]; k == nil || k.Region != in.Region {
				return fmt.Errorf("instance %s: key pair %q is not in region %s", in.ID, id, in.Region)
			}
		}
		it := newInstance(in, s.start)
		a.instances[in.ID] = it
		a.all = append(a.all, it)
		a.byRegion[in.Region] = append(a.byRegion[in.Region], it)
		s.regions[in.Region] = true
	}
	return nil
}

// claim records that the resource what id belongs to a, unless an account
// already has it.
func claim(owners map[string]*account, what, id string, a *account) error {
	switch other := owners[id]; {
	case other == a:
		return fmt.Errorf("%s %s: duplicate ID", what, id)
	case other != nil:
		return fmt.Errorf("%s %s: duplicate ID, also in account %s", what, id, other.uin)
	}
	owners[id] = a
	return nil
}

// accountOf returns the account a verified SecretId acts in: a permanent
// key's own, or the account of the role a temporary key was handed out for.
func (s *Server) accountOf(secretID string) *account {
	if pk, ok := s.keys[secretID]; ok {
		return pk.acct
	}
	return s.tempCredential(secretID).acct
}

// owns reports whether an account has the instance id.
func (s *Server) owns(id string) bool {
	return slices.ContainsFunc(s.accounts, func(a *account) bool { return a.instances[id] != nil })
}

// instanceIn returns the instance id in region, or nil. The caller holds
// s.mu.
func (a *account) instanceIn(region, id string) *instance {
	if in := a.instances[id]; in != nil && in.Region == region {
		return in
	}
	return nil
}

// blueprintIn returns the blueprint id in region, or nil.
func (a *account) blueprintIn(region, id string) *blueprint {
	for _, b := range a.blueprints {
		if b.ID == id && b.inRegion(region) {
			return b
		}
	}
	return nil
}

// keyPairList returns the key pairs in ID order.
func (a *account) keyPairList() []*KeyPair {
	return slices.SortedFunc(maps.Values(a.keyPairs), func(x, y *KeyPair) int { return strings.Compare(x.ID, y.ID) })
}

// callerUIN returns the UIN a permanent SecretId of a belongs to: its
// sub-user's, else the account's own.
func (a *account) callerUIN(secretID string) string {
	if uin, ok := a.users[secretID]; ok {
		return uin
	}
	return a.uin
}

// resourceName returns in's six-segment resource name.
func (a *account) resourceName(in *instance) string {
	return fmt.Sprintf("qcs::lighthouse:%s:uin/%s:instance/%s", in.Region, a.uin, in.ID)
}
