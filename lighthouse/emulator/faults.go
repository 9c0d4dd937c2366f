package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// FaultKind is what an injected fault does to a call.
type FaultKind string

// Fault kinds. A fault that acts "before applying" answers without running
// the action; one that acts "after applying" runs it (a ResetInstance is
// accepted and recorded) and then spoils the answer.
const (
	// FaultDropAfterApply runs the action, then closes the connection without
	// answering: the client cannot tell whether a reset was accepted.
	FaultDropAfterApply FaultKind = "drop_after_apply"
	// FaultUnavailable answers an HTML 5xx page (Fault.StatusCode, default
	// 502) before applying, as a failing gateway would.
	FaultUnavailable FaultKind = "unavailable"
	// FaultLatency runs the action, then delays the answer by Fault.Latency.
	FaultLatency FaultKind = "latency"
	// FaultError answers the error Fault.Code with Fault.Message in the
	// normal envelope before applying.
	FaultError FaultKind = "error"
	// FaultThrottle answers RequestLimitExceeded (or Fault.Code, such as
	// RequestLimitExceeded.UinLimitExceeded) before applying.
	FaultThrottle FaultKind = "throttle"
)

// Fault injects a failure into matching calls. A call matches when its
// action matches Action and, if Instances is set, it names one of those
// instances (InstanceId, or any of InstanceIds). A matching call is then
// affected with probability Probability, unless Instances is set, in which
// case it always is. The first fault in the list that matches and fires
// wins.
//
// In JSON (PUT /_emulator/faults) Latency may be a Go duration string such
// as "1.5s" or a number of nanoseconds.
type Fault struct {
	// Action is the action affected; "" means every action.
	Action string
	// Kind is what the fault does.
	Kind FaultKind
	// Probability is the chance, 0..1, that a matching call is affected.
	// Zero means every matching call. Ignored when Instances is set.
	Probability float64
	// Instances restricts the fault to calls naming these instance IDs.
	Instances []string
	// Code and Message are the error FaultError answers (Code required;
	// Message defaults to a fixed text) and the code FaultThrottle answers
	// (default RequestLimitExceeded).
	Code, Message string
	// StatusCode is the HTTP status FaultUnavailable answers, 500..599;
	// zero means 502.
	StatusCode int
	// Latency is how long FaultLatency delays the answer; it must be
	// positive. The wait ends early if the client goes away or the server is
	// closed.
	Latency time.Duration
}

func (f Fault) validate() error {
	if !(f.Probability >= 0 && f.Probability <= 1) {
		return fmt.Errorf("probability %v: not in 0..1", f.Probability)
	}
	if f.Action != "" && defaultRateLimits[f.Action] == 0 {
		return fmt.Errorf("unknown action %q", f.Action)
	}
	switch f.Kind {
	case FaultDropAfterApply, FaultThrottle:
	case FaultUnavailable:
		if f.StatusCode != 0 && (f.StatusCode < 500 || f.StatusCode > 599) {
			return fmt.Errorf("status code %d: not 5xx", f.StatusCode)
		}
	case FaultLatency:
		if f.Latency <= 0 {
			return errors.New("latency fault without a positive Latency")
		}
	case FaultError:
		if f.Code == "" {
			return errors.New("error fault without a Code")
		}
	default:
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	return nil
}

// faultJSON is Fault's JSON form, with Latency as a duration string or
// nanoseconds.
type faultJSON struct {
	Action      string `json:",omitempty"`
	Kind        FaultKind
	Probability float64         `json:",omitempty"`
	Instances   []string        `json:",omitempty"`
	Code        string          `json:",omitempty"`
	Message     string          `json:",omitempty"`
	StatusCode  int             `json:",omitempty"`
	Latency     json.RawMessage `json:",omitempty"`
}

// MarshalJSON encodes f with Latency as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Action: f.Action, Kind: f.Kind, Probability: f.Probability, Instances: f.Instances,
		Code: f.Code, Message: f.Message, StatusCode: f.StatusCode}
	if f.Latency != 0 {
		j.Latency, _ = json.Marshal(f.Latency.String())
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes f, accepting Latency as a duration string or
// nanoseconds. Unknown fields are an error, so a misspelt one is not
// silently ignored.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*f = Fault{Action: j.Action, Kind: j.Kind, Probability: j.Probability, Instances: j.Instances,
		Code: j.Code, Message: j.Message, StatusCode: j.StatusCode}
	if len(j.Latency) == 0 || string(j.Latency) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(j.Latency, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		f.Latency = d
		return nil
	}
	var ns int64
	if err := json.Unmarshal(j.Latency, &ns); err != nil {
		return errors.New("latency: want a duration string or nanoseconds")
	}
	f.Latency = time.Duration(ns)
	return nil
}

// SetFaults replaces the injected faults, for instance to start or end a
// throttle storm while a run is going. Calls already past fault selection
// are not affected. A nil or empty list removes every fault. It returns an
// error, and changes nothing, if a fault is invalid. It is safe for
// concurrent use.
func (s *Server) SetFaults(faults []Fault) error {
	for i, f := range faults {
		if err := f.validate(); err != nil {
			return fmt.Errorf("fault %d: %w", i, err)
		}
	}
	fs := make([]Fault, len(faults))
	for i, f := range faults {
		f.Instances = slices.Clone(f.Instances)
		fs[i] = f
	}
	s.faults.Store(&fs)
	return nil
}

// Faults returns the faults in force.
func (s *Server) Faults() []Fault {
	fs := *s.faults.Load()
	out := make([]Fault, len(fs))
	for i, f := range fs {
		f.Instances = slices.Clone(f.Instances)
		out[i] = f
	}
	return out
}

// pickFault returns the fault that affects a call of action naming ids, or
// nil.
func (s *Server) pickFault(action string, ids []string) *Fault {
	fs := *s.faults.Load()
	for i := range fs {
		f := &fs[i]
		if f.Action != "" && f.Action != action {
			continue
		}
		if len(f.Instances) > 0 {
			if slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(f.Instances, id) }) {
				return f
			}
			continue
		}
		if f.Probability == 0 || f.Probability >= 1 || s.chance(f.Probability) {
			return f
		}
	}
	return nil
}
