package emulator

import (
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// TAT facts (more-apis §1d; TAT SDK models and error codes).
const (
	maxRunInstances       = 200
	maxCommandBytes       = 64 << 10 // Content, base64-encoded
	maxOutputBytes        = 24 << 10 // TaskResult.Output before encoding
	defaultCommandTimeout = 60
	maxCommandTimeout     = 86400
	maxTATFilterValues    = 5
	agentVersion          = "1.1.8"

	agentOnline  = "Online"
	agentOffline = "Offline"

	taskRunning = "RUNNING"
	taskSuccess = "SUCCESS"
	taskFailed  = "FAILED"
	taskTimeout = "TIMEOUT"
)

// tatInstanceIDPattern accepts the CVM and Lighthouse IDs TAT takes.
var tatInstanceIDPattern = regexp.MustCompile(`^(lh)?ins-[a-z0-9]{8}$`)

var commandTypes = set("SHELL", "POWERSHELL", "BAT")

// InvocationRecord is one RunCommand invocation the emulator accepted.
type InvocationRecord struct {
	// InvocationID and CommandID are the IDs RunCommand returned.
	InvocationID, CommandID string
	// Account is the UIN of the account the call acted in.
	Account string
	// Region is the region the call named.
	Region string
	// InstanceIDs are the instances it runs on, one task each.
	InstanceIDs []string
	// CommandType is SHELL, POWERSHELL or BAT.
	CommandType string
	// Script is the decoded Content.
	Script string
	// Timeout is the command's timeout.
	Timeout time.Duration
	// Created is when the emulator accepted the call; Ends, by instance,
	// when each task ends, on the emulator's clock; OldSystem lists the
	// instances that had not been reset yet (the command ran on the old
	// system).
	Created   time.Time
	Ends      map[string]time.Time
	OldSystem []string
}

// invocation is a RunCommand call's state. It is fixed once created.
type invocation struct {
	InvocationRecord
	content          string // base64, as sent
	workingDirectory string
	username         string
	created          time.Time
}

func (inv *invocation) record() InvocationRecord {
	r := inv.InvocationRecord
	r.InstanceIDs = slices.Clone(r.InstanceIDs)
	r.Ends = maps.Clone(r.Ends)
	r.OldSystem = slices.Clone(r.OldSystem)
	return r
}

// task is one instance's part of an invocation. Its outcome is drawn when
// it is created and shown once its end time passes.
type task struct {
	id         string
	instanceID string
	inv        *invocation
	ends       time.Time
	status     string // final: SUCCESS, FAILED or TIMEOUT
	exitCode   int
	output     string // at most maxOutputBytes
	dropped    int
}

// agentStatus returns the TAT agent's status of in at now and its last
// heartbeat: Offline from a reset's start until AgentOnlineAfter past its
// end (for good if the reset lost the agent), Offline while the instance is
// not RUNNING, Online otherwise. The caller holds s.mu.
func (s *Server) agentStatus(in *instance, now time.Time) (string, time.Time) {
	_, state := in.current(now)
	last := s.start
	if in.op.name == actionResetInstance {
		last = in.op.started
		if in.op.agentLost || now.Before(in.op.ends.Add(s.cfg.agentOnlineAfter)) {
			return agentOffline, last
		}
	}
	if state != stateRunning {
		return agentOffline, last
	}
	return agentOnline, now.Truncate(time.Second)
}

type wireAgent struct {
	InstanceID        string   `json:"InstanceId"`
	Version           string   `json:"Version"`
	LastHeartbeatTime string   `json:"LastHeartbeatTime"`
	AgentStatus       string   `json:"AgentStatus"`
	Environment       string   `json:"Environment"`
	SupportFeatures   []string `json:"SupportFeatures"`
}

type describeAutomationAgentStatusResponse struct {
	AutomationAgentSet []wireAgent `json:"AutomationAgentSet"`
	TotalCount         int         `json:"TotalCount"`
	RequestID          string      `json:"RequestId"`
}

// tatError turns an error of the shared Filters and number checks into
// TAT's codes: TAT reports bad filters (malformed, unknown or too many) as
// InvalidParameterValue.InvalidFilter and bad numbers as
// InvalidParameterValue.Range.
func tatError(e *apiError) *apiError {
	switch {
	case e == nil:
		return nil
	case strings.HasPrefix(e.Code, "InvalidParameter.") || e.Code == "InvalidParameterValue.LimitExceeded":
		return &apiError{Code: "InvalidParameterValue.InvalidFilter", Message: e.Message}
	case strings.HasPrefix(e.Code, "InvalidParameterValue."):
		return &apiError{Code: "InvalidParameterValue.Range", Message: e.Message}
	}
	return e
}

// tatIDs returns list-of-IDs parameter name (at most max, well formed per
// valid, else malformedCode), for TAT.
func tatIDs(p params, name string, max int, valid func(string) bool, malformedCode string) ([]string, *apiError) {
	ids, _, e := p.strs(name)
	if e != nil {
		return nil, e
	}
	if len(ids) > max {
		return nil, errorf("InvalidParameterValue.Range", "The parameter `%s` has more than %d values.", name, max)
	}
	for i, id := range ids {
		if !valid(id) {
			return nil, errorf(malformedCode, "The ID `%s` in `%s` is invalid.", id, name)
		}
		if slices.Contains(ids[:i], id) {
			return nil, errorf("InvalidParameterValue", "The parameter `%s` has the duplicate value `%s`.", name, id)
		}
	}
	return ids, nil
}

// DescribeAutomationAgentStatus (https://www.tencentcloud.com/document/api/1147/46677).

func (s *Server) prepareDescribeAutomationAgentStatus(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("InstanceIds", "Filters", "Limit", "Offset"); e != nil {
		return nil, nil, e
	}
	ids, e := tatIDs(p, "InstanceIds", maxIDs, tatInstanceIDPattern.MatchString, "InvalidParameterValue.InvalidInstanceId")
	if e != nil {
		return nil, nil, e
	}
	fs, e := p.filters([]string{"agent-status", "environment", "instance-id"}, maxTATFilterValues)
	if e = tatError(e); e != nil {
		return nil, nil, e
	}
	if len(ids) > 0 && len(fs) > 0 {
		return nil, nil, errorf("InvalidParameter.ConflictParameter", "The parameters `InstanceIds` and `Filters` cannot be used together.")
	}
	offset, limit, e := p.paging()
	if e = tatError(e); e != nil {
		return nil, nil, e
	}
	return ids, func() answer {
		s.mu.RLock()
		defer s.mu.RUnlock()
		var candidates []*instance
		if len(ids) > 0 {
			for _, id := range ids {
				if in := c.acct.instanceIn(c.region, id); in != nil {
					candidates = append(candidates, in)
				}
			}
		} else {
			candidates = c.acct.byRegion[c.region]
		}
		var matched []wireAgent
		for _, in := range candidates {
			status, last := s.agentStatus(in, c.now)
			a := wireAgent{InstanceID: in.ID, Version: agentVersion, LastHeartbeatTime: formatTime(last),
				AgentStatus: status, Environment: "Linux", SupportFeatures: []string{}}
			if in.PlatformType == "WINDOWS" {
				a.Environment = "Windows"
			}
			if matchFields(fs, map[string]string{"agent-status": a.AgentStatus, "environment": a.Environment, "instance-id": a.InstanceID}) {
				matched = append(matched, a)
			}
		}
		lo, hi := page(len(matched), offset, limit)
		set := append([]wireAgent{}, matched[lo:hi]...)
		return answer{body: describeAutomationAgentStatusResponse{AutomationAgentSet: set, TotalCount: len(matched), RequestID: c.requestID}}
	}, nil
}

// matchFields reports whether fields pass every filter, each filter naming
// a field that must equal one of its values.
func matchFields(fs []filter, fields map[string]string) bool {
	for _, f := range fs {
		if !slices.Contains(f.Values, fields[f.Name]) {
			return false
		}
	}
	return true
}

// RunCommand (TAT 2020-10-28): runs a script on up to 200 instances.

type runCommandResponse struct {
	CommandID    string `json:"CommandId"`
	InvocationID string `json:"InvocationId"`
	RequestID    string `json:"RequestId"`
}

func (s *Server) prepareRunCommand(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("Content", "InstanceIds", "CommandName", "Description", "CommandType", "WorkingDirectory", "Timeout",
		"SaveCommand", "EnableParameter", "DefaultParameters", "DefaultParameterConfs", "Parameters", "Tags", "Username",
		"OutputCOSBucketUrl", "OutputCOSKeyPrefix"); e != nil {
		return nil, nil, e
	}
	content, ok, e := p.str("Content")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		return nil, nil, missing("Content")
	}
	script, err := base64.StdEncoding.DecodeString(content)
	if err != nil || content == "" || len(content) > maxCommandBytes {
		return nil, nil, errorf("InvalidParameterValue.CommandContentInvalid", "Content must be base64 of at most %d bytes.", maxCommandBytes)
	}
	if _, ok := p["InstanceIds"]; !ok {
		return nil, nil, missing("InstanceIds")
	}
	ids, e := tatIDs(p, "InstanceIds", maxRunInstances, tatInstanceIDPattern.MatchString, "InvalidParameterValue.InvalidInstanceId")
	if e != nil {
		return nil, nil, e
	}
	if len(ids) == 0 {
		return nil, nil, missing("InstanceIds")
	}
	commandType, ok, e := p.str("CommandType")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		commandType = "SHELL"
	}
	if !commandTypes[commandType] {
		return nil, nil, errorf("InvalidParameterValue", "CommandType must be SHELL, POWERSHELL or BAT, not `%s`.", commandType)
	}
	timeout, ok, e := p.integer("Timeout")
	if e = tatError(e); e != nil {
		return nil, nil, e
	}
	if !ok {
		timeout = defaultCommandTimeout
	}
	if timeout < 1 || timeout > maxCommandTimeout {
		return nil, nil, errorf("InvalidParameterValue.Range", "Timeout must be between 1 and %d seconds.", maxCommandTimeout)
	}
	name, _, e := p.str("CommandName")
	if e != nil {
		return nil, nil, e
	}
	if len(name) > 60 {
		return nil, nil, errorf("InvalidParameterValue.InvalidCommandName", "CommandName is longer than 60 bytes.")
	}
	inv := &invocation{InvocationRecord: InvocationRecord{Account: c.acct.uin, Region: c.region, InstanceIDs: ids, CommandType: commandType,
		Script: string(script), Timeout: time.Duration(timeout) * time.Second, Created: c.now, Ends: map[string]time.Time{}}, content: content, created: c.now}
	for name, dst := range map[string]*string{"WorkingDirectory": &inv.workingDirectory, "Username": &inv.username} {
		if *dst, _, e = p.str(name); e != nil {
			return nil, nil, e
		}
	}
	return ids, func() answer { return s.runCommand(c, inv, script) }, nil
}

func (s *Server) runCommand(c *call, inv *invocation, script []byte) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range inv.InstanceIDs {
		in := c.acct.instanceIn(c.region, id)
		if in == nil {
			return answer{err: errorf("ResourceNotFound.InstanceNotFound", "The instance `%s` does not exist.", id)}
		}
		if _, state := in.current(c.now); state != stateRunning {
			return answer{err: errorf("ResourceUnavailable.InstanceStateNotRunning", "The instance `%s` is %s, not RUNNING.", id, state)}
		}
		if status, _ := s.agentStatus(in, c.now); status != agentOnline {
			return answer{err: errorf("ResourceUnavailable.AgentStatusNotOnline", "The TAT agent of instance `%s` is not online.", id)}
		}
	}
	inv.InvocationID, inv.CommandID = s.newTATID("inv-"), s.newTATID("cmd-")
	for _, id := range inv.InstanceIDs {
		old := len(c.acct.instanceIn(c.region, id).resets) == 0
		if old {
			inv.OldSystem = append(inv.OldSystem, id)
		}
		t := s.newTask(inv, id, script, c.now, old)
		inv.Ends[id] = t.ends
		c.acct.tasks = append(c.acct.tasks, t)
		c.acct.taskByID[t.id] = t
	}
	s.invocations = append(s.invocations, inv)
	s.cfg.log.Debug("emulator command accepted", "account", c.acct, "request_id", c.requestID, "invocation_id", inv.InvocationID, "instances", len(inv.InstanceIDs))
	return answer{body: runCommandResponse{CommandID: inv.CommandID, InvocationID: inv.InvocationID, RequestID: c.requestID}}
}

// newTATID returns prefix and 8 random characters not used yet. The caller
// holds s.mu.
func (s *Server) newTATID(prefix string) string {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	for {
		id := prefix + randomSuffix(s.rng)
		if !s.tatIDs[id] {
			s.tatIDs[id] = true
			return id
		}
	}
}

// newTask draws the outcome (oldSystem: the instance has not been reset
// since the emulator started) of inv's task on instance id. The caller holds
// s.mu.
func (s *Server) newTask(inv *invocation, id string, script []byte, now time.Time, oldSystem bool) *task {
	t := &task{id: s.newTATID("invt-"), instanceID: id, inv: inv}
	s.rngMu.Lock()
	d := s.drawLocked(s.cfg.commandMin, s.cfg.commandMax)
	timedOut := s.cfg.commandTimeout[id] || s.cfg.commandTimeoutRate > 0 && s.rng.Float64() < s.cfg.commandTimeoutRate
	failed := s.cfg.commandFail[id] || oldSystem && s.cfg.commandFailOld[id] || s.cfg.commandFailureRate > 0 && s.rng.Float64() < s.cfg.commandFailureRate
	s.rngMu.Unlock()
	switch {
	case timedOut || d >= inv.Timeout:
		t.ends, t.status, t.exitCode = now.Add(inv.Timeout), taskTimeout, -1
	case failed:
		t.ends, t.status, t.exitCode = now.Add(d), taskFailed, 1
	default:
		t.ends, t.status, t.exitCode = now.Add(d), taskSuccess, 0
	}
	t.output = s.cfg.commandOutput(id, script, t.exitCode)
	if n := len(t.output); n > maxOutputBytes {
		t.output, t.dropped = t.output[:maxOutputBytes], n-maxOutputBytes
	}
	return t
}

// defaultCommandOutput is the output of a task when Config.CommandOutputFunc
// is nil.
func defaultCommandOutput(instanceID string, _ []byte, exitCode int) string {
	if exitCode < 0 {
		return fmt.Sprintf("%s: killed after the timeout\n", instanceID)
	}
	return fmt.Sprintf("%s: exit %d\n", instanceID, exitCode)
}

// DescribeInvocationTasks (TAT 2020-10-28): the per-instance tasks of invocations.

type wireTaskResult struct {
	ExitCode                 int     `json:"ExitCode"`
	Output                   string  `json:"Output"`
	ExecStartTime            string  `json:"ExecStartTime"`
	ExecEndTime              *string `json:"ExecEndTime"`
	Dropped                  int     `json:"Dropped"`
	OutputURL                string  `json:"OutputUrl"`
	OutputUploadCOSErrorInfo string  `json:"OutputUploadCOSErrorInfo"`
}

type wireCommandDocument struct {
	Content            string `json:"Content"`
	CommandType        string `json:"CommandType"`
	Timeout            int    `json:"Timeout"`
	WorkingDirectory   string `json:"WorkingDirectory"`
	Username           string `json:"Username"`
	OutputCOSBucketURL string `json:"OutputCOSBucketUrl"`
	OutputCOSKeyPrefix string `json:"OutputCOSKeyPrefix"`
}

type wireInvocationTask struct {
	InvocationID     string              `json:"InvocationId"`
	InvocationTaskID string              `json:"InvocationTaskId"`
	CommandID        string              `json:"CommandId"`
	TaskStatus       string              `json:"TaskStatus"`
	InstanceID       string              `json:"InstanceId"`
	TaskResult       wireTaskResult      `json:"TaskResult"`
	StartTime        string              `json:"StartTime"`
	EndTime          *string             `json:"EndTime"`
	CreatedTime      string              `json:"CreatedTime"`
	UpdatedTime      string              `json:"UpdatedTime"`
	CommandDocument  wireCommandDocument `json:"CommandDocument"`
	ErrorInfo        string              `json:"ErrorInfo"`
	InvocationSource string              `json:"InvocationSource"`
}

type describeInvocationTasksResponse struct {
	TotalCount        int                  `json:"TotalCount"`
	InvocationTaskSet []wireInvocationTask `json:"InvocationTaskSet"`
	RequestID         string               `json:"RequestId"`
}

// view is t as DescribeInvocationTasks shows it at now.
func (t *task) view(now time.Time, hideOutput bool) wireInvocationTask {
	inv := t.inv
	started := formatTime(inv.created)
	w := wireInvocationTask{InvocationID: inv.InvocationID, InvocationTaskID: t.id, CommandID: inv.CommandID,
		TaskStatus: taskRunning, InstanceID: t.instanceID, TaskResult: wireTaskResult{ExecStartTime: started},
		StartTime: started, CreatedTime: started, UpdatedTime: started, InvocationSource: "USER",
		CommandDocument: wireCommandDocument{Content: inv.content, CommandType: inv.CommandType, Timeout: int(inv.Timeout / time.Second),
			WorkingDirectory: inv.workingDirectory, Username: inv.username}}
	if now.Before(t.ends) {
		return w
	}
	ended := formatTime(t.ends)
	w.TaskStatus, w.EndTime, w.UpdatedTime = t.status, &ended, ended
	w.TaskResult.ExitCode, w.TaskResult.ExecEndTime, w.TaskResult.Dropped = t.exitCode, &ended, t.dropped
	if !hideOutput {
		w.TaskResult.Output = base64.StdEncoding.EncodeToString([]byte(t.output))
	}
	if t.status == taskTimeout {
		w.ErrorInfo = "the command did not finish within its timeout"
	}
	return w
}

var (
	invocationTaskIDPattern = regexp.MustCompile(`^invt-[a-z0-9]{8}$`)
	invocationTaskFilters   = []string{"invocation-id", "invocation-task-id", "instance-id", "command-id"}
)

func (s *Server) prepareDescribeInvocationTasks(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("InvocationTaskIds", "Filters", "Limit", "Offset", "HideOutput"); e != nil {
		return nil, nil, e
	}
	ids, e := tatIDs(p, "InvocationTaskIds", maxIDs, invocationTaskIDPattern.MatchString, "InvalidParameterValue.InvalidInvocationTaskId")
	if e != nil {
		return nil, nil, e
	}
	fs, e := p.filters(invocationTaskFilters, maxTATFilterValues)
	if e = tatError(e); e != nil {
		return nil, nil, e
	}
	if len(ids) > 0 && len(fs) > 0 {
		return nil, nil, errorf("InvalidParameter.ConflictParameter", "The parameters `InvocationTaskIds` and `Filters` cannot be used together.")
	}
	offset, limit, e := p.paging()
	if e = tatError(e); e != nil {
		return nil, nil, e
	}
	hide := true
	if raw, ok := p["HideOutput"]; ok {
		switch string(raw) {
		case "true":
		case "false":
			hide = false
		default:
			return nil, nil, wrongType("HideOutput", "Boolean")
		}
	}
	return nil, func() answer {
		s.mu.RLock()
		defer s.mu.RUnlock()
		var matched []*task
		if len(ids) > 0 {
			for _, id := range ids {
				if t := c.acct.taskByID[id]; t != nil && t.inv.Region == c.region {
					matched = append(matched, t)
				}
			}
		} else {
			for _, t := range c.acct.tasks {
				if t.inv.Region == c.region && matchFields(fs, map[string]string{"invocation-id": t.inv.InvocationID,
					"invocation-task-id": t.id, "instance-id": t.instanceID, "command-id": t.inv.CommandID}) {
					matched = append(matched, t)
				}
			}
		}
		lo, hi := page(len(matched), offset, limit)
		set := make([]wireInvocationTask, 0, hi-lo)
		for _, t := range matched[lo:hi] {
			set = append(set, t.view(c.now, hide))
		}
		return answer{body: describeInvocationTasksResponse{TotalCount: len(matched), InvocationTaskSet: set, RequestID: c.requestID}}
	}, nil
}
