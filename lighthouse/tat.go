package lighthouse

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"
)

// TAT limits (more-apis.md §1d and the TAT API pages).
const (
	// MaxRunCommandInstances is the most instances one RunCommand runs on.
	MaxRunCommandInstances = 200
	// MaxCommandContent is the most bytes of base64 content RunCommand
	// takes.
	MaxCommandContent = 64 << 10
	// MaxCommandTimeout is the longest command timeout.
	MaxCommandTimeout = 86400 * time.Second
)

// Values of AutomationAgent.AgentStatus.
const (
	AgentOnline  = "Online"
	AgentOffline = "Offline"
)

// AutomationAgent is the TAT agent of one instance (AutomationAgentInfo).
type AutomationAgent struct {
	InstanceID        string   `json:"InstanceId"`
	Version           string   `json:"Version"`
	LastHeartbeatTime string   `json:"LastHeartbeatTime"` // ISO 8601 UTC
	AgentStatus       string   `json:"AgentStatus"`
	Environment       string   `json:"Environment"` // "Linux" or "Windows"
	SupportFeatures   []string `json:"SupportFeatures"`
}

// Heartbeat parses LastHeartbeatTime; ok is false when it is absent or
// unparseable.
func (a *AutomationAgent) Heartbeat() (t time.Time, ok bool) {
	t, err := time.Parse(time.RFC3339, a.LastHeartbeatTime)
	return t, err == nil
}

type describeAutomationAgentStatusRequest struct {
	InstanceIDs []string `json:"InstanceIds"`
	Limit       int      `json:"Limit"`
}

type describeAutomationAgentStatusResponse struct {
	meta
	TotalCount         int               `json:"TotalCount"`
	AutomationAgentSet []AutomationAgent `json:"AutomationAgentSet"`
}

// DescribeAutomationAgentStatus returns the TAT agents of the instances of
// region with the given IDs: whether each is Online, and its last
// heartbeat, to tell an instance that came back after a reset. It makes
// one call: more than MaxIDsPerCall IDs fail before sending, with
// ClientError.InvalidParameter. An instance without an agent is left out.
// An empty ids makes no call and returns nil.
//
// API docs: https://www.tencentcloud.com/document/product/1147/46698
func (c *Client) DescribeAutomationAgentStatus(ctx context.Context, region string, ids []string) ([]AutomationAgent, error) {
	var resp describeAutomationAgentStatusResponse
	req := describeAutomationAgentStatusRequest{InstanceIDs: ids, Limit: len(ids)}
	if err := c.describeIDs(ctx, serviceTAT, region, ActionDescribeAutomationAgentStatus, ids, req, &resp); err != nil {
		return nil, err
	}
	return resp.AutomationAgentSet, nil
}

// Values of RunCommandRequest.CommandType.
const (
	CommandShell      = "SHELL"
	CommandPowerShell = "POWERSHELL"
	CommandBat        = "BAT"
)

// RunCommandRequest is a RunCommand call. The command is not saved.
type RunCommandRequest struct {
	// Content is the script, as plain bytes: RunCommand encodes it.
	Content []byte
	// InstanceIDs are the instances to run on: at most
	// MaxRunCommandInstances, of one kind (CVM or Lighthouse).
	InstanceIDs []string
	// CommandType is CommandShell, CommandPowerShell or CommandBat.
	// Default CommandShell.
	CommandType string
	// Timeout bounds the command on each instance, whole seconds up to
	// MaxCommandTimeout. Default: the API's, 60s.
	Timeout time.Duration
	// WorkingDirectory and Username default to the agent's (root, or
	// System on Windows).
	WorkingDirectory string
	Username         string
	// CommandName names the command in the console; "" for none.
	CommandName string
}

type runCommandRequest struct {
	Content          string   `json:"Content"`
	InstanceIDs      []string `json:"InstanceIds"`
	CommandType      string   `json:"CommandType"`
	Timeout          int64    `json:"Timeout,omitempty"`
	WorkingDirectory string   `json:"WorkingDirectory,omitempty"`
	Username         string   `json:"Username,omitempty"`
	CommandName      string   `json:"CommandName,omitempty"`
	SaveCommand      bool     `json:"SaveCommand"`
}

type runCommandResponse struct {
	meta
	CommandID    string `json:"CommandId"`
	InvocationID string `json:"InvocationId"`
}

// RunCommand runs req.Content on req.InstanceIDs of region through their
// TAT agents and returns the invocation's ID (inv-…), whose tasks
// DescribeInvocationTasks reports. A request that breaks the documented
// limits fails before sending, with ClientError.InvalidParameter.
//
// RunCommand is not idempotent: when the error's Class is ClassAmbiguous
// the command may be running.
//
// API docs: https://www.tencentcloud.com/document/product/1147/46686
func (c *Client) RunCommand(ctx context.Context, region string, req RunCommandRequest) (invocationID string, err error) {
	wire := runCommandRequest{
		Content:          base64.StdEncoding.EncodeToString(req.Content),
		InstanceIDs:      req.InstanceIDs,
		CommandType:      req.CommandType,
		Timeout:          int64(req.Timeout / time.Second),
		WorkingDirectory: req.WorkingDirectory,
		Username:         req.Username,
		CommandName:      req.CommandName,
	}
	if wire.CommandType == "" {
		wire.CommandType = CommandShell
	}
	switch {
	case len(req.Content) == 0:
		err = fmt.Errorf("empty content")
	case len(wire.Content) > MaxCommandContent:
		err = fmt.Errorf("content is %d bytes in base64, at most %d", len(wire.Content), MaxCommandContent)
	case len(req.InstanceIDs) == 0 || len(req.InstanceIDs) > MaxRunCommandInstances:
		err = fmt.Errorf("%d instances, want 1 to %d", len(req.InstanceIDs), MaxRunCommandInstances)
	case req.Timeout < 0 || req.Timeout > MaxCommandTimeout || req.Timeout%time.Second != 0:
		err = fmt.Errorf("timeout %v: want whole seconds up to %v", req.Timeout, MaxCommandTimeout)
	case wire.CommandType != CommandShell && wire.CommandType != CommandPowerShell && wire.CommandType != CommandBat:
		err = fmt.Errorf("command type %q: want SHELL, POWERSHELL or BAT", wire.CommandType)
	}
	if err != nil {
		return "", invalidParameter(ActionRunCommand, err)
	}
	var resp runCommandResponse
	if err := c.call(ctx, serviceTAT, region, ActionRunCommand, wire, &resp); err != nil {
		return "", err
	}
	return resp.InvocationID, nil
}

// Values of InvocationTask.TaskStatus (more-apis.md §1d).
const (
	TaskPending        = "PENDING"
	TaskDelivering     = "DELIVERING"
	TaskDeliverDelayed = "DELIVER_DELAYED"
	TaskDeliverFailed  = "DELIVER_FAILED"
	TaskStartFailed    = "START_FAILED"
	TaskRunning        = "RUNNING"
	TaskSuccess        = "SUCCESS"
	TaskFailed         = "FAILED" // the command exited non-zero
	TaskTimeout        = "TIMEOUT"
	TaskTaskTimeout    = "TASK_TIMEOUT" // the agent did not answer
	TaskCancelling     = "CANCELLING"
	TaskCancelled      = "CANCELLED"
	TaskTerminated     = "TERMINATED"
)

// InvocationTask is one instance's run of an invocation.
type InvocationTask struct {
	InvocationTaskID string     `json:"InvocationTaskId"`
	InvocationID     string     `json:"InvocationId"`
	InstanceID       string     `json:"InstanceId"`
	TaskStatus       string     `json:"TaskStatus"`
	TaskResult       TaskResult `json:"TaskResult"`
	ErrorInfo        string     `json:"ErrorInfo"`
}

// Done reports whether the task has ended, whatever its outcome.
func (t *InvocationTask) Done() bool {
	switch t.TaskStatus {
	case TaskPending, TaskDelivering, TaskDeliverDelayed, TaskRunning, TaskCancelling, "":
		return false
	}
	return true
}

// TaskResult is what a task's command did.
type TaskResult struct {
	ExitCode      int    `json:"ExitCode"`
	Output        string `json:"Output"`  // base64, at most 24 KB; see DecodedOutput
	Dropped       int    `json:"Dropped"` // bytes of output cut off
	ExecStartTime string `json:"ExecStartTime"`
	ExecEndTime   string `json:"ExecEndTime"`
	OutputURL     string `json:"OutputUrl"`
}

// DecodedOutput returns Output decoded from base64.
func (r *TaskResult) DecodedOutput() ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(r.Output)
	if err != nil {
		return nil, fmt.Errorf("decode task output: %w", err)
	}
	return b, nil
}

type describeInvocationTasksRequest struct {
	Filters    []Filter `json:"Filters"`
	Offset     int      `json:"Offset,omitempty"`
	Limit      int      `json:"Limit"`
	HideOutput bool     `json:"HideOutput"`
}

type describeInvocationTasksResponse struct {
	meta
	TotalCount        int              `json:"TotalCount"`
	InvocationTaskSet []InvocationTask `json:"InvocationTaskSet"`
}

// DescribeInvocationTasks returns every task of invocation invocationID in
// region, with its output, reading pages of MaxIDsPerCall one after the
// other; it stops at the first error.
//
// API docs: https://www.tencentcloud.com/document/product/1147/46696
func (c *Client) DescribeInvocationTasks(ctx context.Context, region, invocationID string) ([]InvocationTask, error) {
	if invocationID == "" {
		return nil, invalidParameter(ActionDescribeInvocationTasks, fmt.Errorf("invocation ID is empty"))
	}
	var all []InvocationTask
	for {
		// HideOutput defaults to true.
		req := describeInvocationTasksRequest{
			Filters: []Filter{{Name: "invocation-id", Values: []string{invocationID}}},
			Offset:  len(all), Limit: MaxIDsPerCall, HideOutput: false,
		}
		var resp describeInvocationTasksResponse
		if err := c.call(ctx, serviceTAT, region, ActionDescribeInvocationTasks, req, &resp); err != nil {
			return nil, err
		}
		all = append(all, resp.InvocationTaskSet...)
		if len(resp.InvocationTaskSet) == 0 || len(all) >= resp.TotalCount {
			return all, nil
		}
	}
}
