package lighthouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ResetInstanceRequest is a ResetInstance call: the instance, the
// blueprint, and what the China site also accepts.
type ResetInstanceRequest struct {
	InstanceID string
	// BlueprintID is the blueprint to install; "" reinstalls the current one.
	BlueprintID string
	// LoginConfiguration sets how users log in after the reset; nil leaves
	// it to the user. China site only: elsewhere the API refuses it with
	// UnknownParameter.
	LoginConfiguration *LoginConfiguration
	// Containers are started on a Docker blueprint. China site only.
	Containers []ContainerConfiguration
}

// LogValue reports the request without its password or container
// environment.
func (r ResetInstanceRequest) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("instance_id", r.InstanceID), slog.String("blueprint_id", r.BlueprintID)}
	if r.LoginConfiguration != nil {
		attrs = append(attrs, slog.Any("login", r.LoginConfiguration))
	}
	if len(r.Containers) > 0 {
		attrs = append(attrs, slog.Int("containers", len(r.Containers)))
	}
	return slog.GroupValue(attrs...)
}

// Values of LoginConfiguration.AutoGeneratePassword.
const (
	AutoGeneratePasswordYes = "YES"
	AutoGeneratePasswordNo  = "NO"
)

// LoginConfiguration is how users log in after a reset: up to MaxKeyIDs key
// pairs, or a password, or one the API generates (AutoGeneratePassword
// YES), not more than one. Its String, GoString, LogValue and MarshalJSON
// never show the password.
type LoginConfiguration struct {
	KeyIDs []string
	// AutoGeneratePassword is AutoGeneratePasswordYes or
	// AutoGeneratePasswordNo; "" sends none.
	AutoGeneratePassword string
	// Password: LINUX_UNIX 8–30 characters, WINDOWS 12–30, of at least 3
	// kinds, not starting with "/".
	Password string
}

// String returns the key IDs and whether a password is set.
func (l LoginConfiguration) String() string {
	return fmt.Sprintf("LoginConfiguration{KeyIDs: %v, AutoGeneratePassword: %q, Password: %s}", l.KeyIDs, l.AutoGeneratePassword, passwordPlaceholder(l.Password))
}

// GoString is String, so that %#v does not print the password either.
func (l LoginConfiguration) GoString() string { return l.String() }

// LogValue reports the key IDs and whether a password is set.
func (l LoginConfiguration) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("key_ids", l.KeyIDs),
		slog.String("auto_generate_password", l.AutoGeneratePassword),
		slog.String("password", passwordPlaceholder(l.Password)),
	)
}

// MarshalJSON encodes placeholders for the password, for JSON logs; the
// request sent holds the password itself.
func (l LoginConfiguration) MarshalJSON() ([]byte, error) {
	w := l.wire()
	if w.Password != "" {
		w.Password = redacted
	}
	return json.Marshal(w)
}

func passwordPlaceholder(p string) string {
	if p == "" {
		return "[NONE]"
	}
	return redacted
}

// loginConfiguration is LoginConfiguration on the wire.
type loginConfiguration struct {
	KeyIDs               []string `json:"KeyIds,omitempty"`
	AutoGeneratePassword string   `json:"AutoGeneratePassword,omitempty"`
	Password             string   `json:"Password,omitempty"`
}

func (l LoginConfiguration) wire() loginConfiguration {
	return loginConfiguration(l)
}

// validate checks what the API documents and the client can check alone.
func (l LoginConfiguration) validate() error {
	switch l.AutoGeneratePassword {
	case "", AutoGeneratePasswordYes, AutoGeneratePasswordNo:
	default:
		return fmt.Errorf("LoginConfiguration.AutoGeneratePassword %q: want YES or NO", l.AutoGeneratePassword)
	}
	if len(l.KeyIDs) > MaxKeyIDs {
		return fmt.Errorf("LoginConfiguration.KeyIDs: %d key pairs, at most %d", len(l.KeyIDs), MaxKeyIDs)
	}
	n := 0
	for _, set := range []bool{len(l.KeyIDs) > 0, l.Password != "", l.AutoGeneratePassword == AutoGeneratePasswordYes} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("LoginConfiguration: key pairs, a password and a generated password exclude each other")
	}
	return nil
}

// ContainerConfiguration is a Docker container a reset to a Docker
// blueprint starts (the API's DockerContainerConfiguration).
type ContainerConfiguration struct {
	ContainerImage string                `json:"ContainerImage"`
	ContainerName  string                `json:"ContainerName,omitempty"`
	Envs           []ContainerEnv        `json:"Envs,omitempty"`
	PublishPorts   []ContainerPublishing `json:"PublishPorts,omitempty"`
	Volumes        []ContainerVolume     `json:"Volumes,omitempty"`
	Command        string                `json:"Command,omitempty"`
	// RestartPolicy is "no", "on-failure", "on-failure:N" or "always".
	RestartPolicy string `json:"RestartPolicy,omitempty"`
}

// ContainerEnv is an environment variable of a container.
type ContainerEnv struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// ContainerPublishing publishes a container port on the host.
type ContainerPublishing struct {
	HostPort      int    `json:"HostPort"`
	ContainerPort int    `json:"ContainerPort"`
	IP            string `json:"Ip,omitempty"`
	Protocol      string `json:"Protocol,omitempty"` // "tcp" or "udp"
}

// ContainerVolume mounts a host path in a container.
type ContainerVolume struct {
	ContainerPath string `json:"ContainerPath"`
	HostPath      string `json:"HostPath"`
}

type resetInstanceRequest struct {
	InstanceID         string                   `json:"InstanceId"`
	BlueprintID        string                   `json:"BlueprintId,omitempty"`
	LoginConfiguration *loginConfiguration      `json:"LoginConfiguration,omitempty"`
	Containers         []ContainerConfiguration `json:"Containers,omitempty"`
}

type resetInstanceResponse struct {
	meta
}

// ResetInstance reinstalls the system disk of instance req.InstanceID
// in region as req says. The reset is asynchronous: the returned RequestId
// identifies it, and DescribeInstances reports its progress
// (LatestOperationRequestId, LatestOperationState). A LoginConfiguration
// that breaks the documented rules fails before sending, with
// ClientError.InvalidParameter.
//
// ResetInstance formats the system disk and is not idempotent: when the
// error's Class is ClassAmbiguous the reset may have been accepted, and it
// must not be sent again before DescribeInstances proves it absent.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42490 (the
// China site's page, cloud.tencent.com/document/api/1207/47578, has
// LoginConfiguration and Containers)
func (c *Client) ResetInstance(ctx context.Context, region string, req ResetInstanceRequest) (requestID string, err error) {
	wire := resetInstanceRequest{InstanceID: req.InstanceID, BlueprintID: req.BlueprintID, Containers: req.Containers}
	password := ""
	if lc := req.LoginConfiguration; lc != nil {
		if err := lc.validate(); err != nil {
			return "", invalidParameter(ActionResetInstance, err)
		}
		w := lc.wire()
		wire.LoginConfiguration, password = &w, lc.Password
	}
	var resp resetInstanceResponse
	if err := c.call(ctx, serviceLighthouse, region, ActionResetInstance, wire, &resp); err != nil {
		if ae, ok := errors.AsType[*APIError](err); ok && password != "" {
			// An InvalidPassword message might quote it.
			ae.Message = strings.ReplaceAll(ae.Message, password, redacted)
		}
		return "", err
	}
	return resp.RequestID, nil
}

type describeInstancesRequest struct {
	InstanceIDs []string `json:"InstanceIds,omitempty"`
	Filters     []Filter `json:"Filters,omitempty"`
	Offset      int      `json:"Offset,omitempty"`
	Limit       int      `json:"Limit,omitempty"`
}

type describeInstancesResponse struct {
	meta
	TotalCount  int        `json:"TotalCount"`
	InstanceSet []Instance `json:"InstanceSet"`
}

// DescribeInstances returns the instances of region with the given IDs, in
// the order the API returns them, with Region set, in one call: more than
// MaxIDsPerCall IDs fail before sending, with ClientError.InvalidParameter
// (runner.Cloud splits a larger list into calls, each under its limiter).
// An empty ids makes no call and returns nil: the API would answer with
// every instance of region.
//
// An ID the API does not know in region may fail the whole call with
// ResourceNotFound.InstanceIdNotFound (ClassPermanent) or be left out of the
// result.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42498
func (c *Client) DescribeInstances(ctx context.Context, region string, ids []string) ([]Instance, error) {
	var resp describeInstancesResponse
	req := describeInstancesRequest{InstanceIDs: ids, Limit: len(ids)}
	if err := c.describeIDs(ctx, serviceLighthouse, region, ActionDescribeInstances, ids, req, &resp); err != nil {
		return nil, err
	}
	setRegion(resp.InstanceSet, region)
	return resp.InstanceSet, nil
}

// describeIDs makes the one call of a Describe action for ids, whose
// request req names them with a Limit of len(ids) (the API's default
// Limit, 20, would cut the answer short). No ids make no call, and out
// stays empty: the API would answer with everything. More than
// MaxIDsPerCall fail before sending, with ClientError.InvalidParameter.
func (c *Client) describeIDs(ctx context.Context, s service, region, action string, ids []string, req any, out response) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > MaxIDsPerCall {
		return invalidParameter(action, fmt.Errorf("%d IDs, at most %d in one call", len(ids), MaxIDsPerCall))
	}
	return c.call(ctx, s, region, action, req, out)
}

// Names of DescribeInstances filters (more-apis.md §1a). There is no
// instance-id filter: DescribeInstances takes IDs instead.
const (
	FilterInstanceName     = "instance-name"
	FilterPrivateIPAddress = "private-ip-address"
	FilterPublicIPAddress  = "public-ip-address"
	FilterZone             = "zone"
	FilterInstanceState    = "instance-state"
	FilterTagKey           = "tag-key"
	FilterTagValue         = "tag-value"
	FilterBundleID         = "bundle-id" // China site only
)

// FilterTag returns the name of the filter that matches instances whose
// tag key has one of the filter's values.
func FilterTag(key string) string { return "tag:" + key }

// DescribeInstancesPage returns one page of the instances of region that
// match all of filters, with Region set, and how many match in all
// (TotalCount): the instances at offset, at most limit of them. limit is at
// most MaxIDsPerCall; 0 means the API's default, 20. The filters follow
// the API's rules (more-apis.md §1a).
//
// API docs: https://www.tencentcloud.com/document/product/1103/42498
func (c *Client) DescribeInstancesPage(ctx context.Context, region string, filters []Filter, offset, limit int) (total int, instances []Instance, err error) {
	if err := checkFilters(filters, MaxFilters, MaxFilterValues); err != nil {
		return 0, nil, invalidParameter(ActionDescribeInstances, err)
	}
	req := describeInstancesRequest{Filters: filters, Offset: offset, Limit: limit}
	var resp describeInstancesResponse
	if err := c.call(ctx, serviceLighthouse, region, ActionDescribeInstances, req, &resp); err != nil {
		return 0, nil, err
	}
	setRegion(resp.InstanceSet, region)
	return resp.TotalCount, resp.InstanceSet, nil
}

// checkFilters checks filters against the documented limits: at most
// maxFilters filters, maxValues values in all, none empty.
func checkFilters(filters []Filter, maxFilters, maxValues int) error {
	if len(filters) > maxFilters {
		return fmt.Errorf("%d filters, at most %d", len(filters), maxFilters)
	}
	n := 0
	for _, f := range filters {
		if f.Name == "" || len(f.Values) == 0 {
			return fmt.Errorf("filter %q: want a name and at least one value", f.Name)
		}
		n += len(f.Values)
	}
	if n > maxValues {
		return fmt.Errorf("%d filter values, at most %d", n, maxValues)
	}
	return nil
}

func setRegion(instances []Instance, region string) {
	for i := range instances {
		instances[i].Region = region
	}
}
