package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// HookSettings are a run's lifecycle hooks (run's --before-reset,
// --after-reset and --hook-* flags) as the run's record keeps them, so that
// every runner of the run uses the same ones and status, plan and the
// status page show the run's own: a hook is its spec (exec:FILE or
// tat:FILE, the file's absolute path), never the file's contents. The zero
// value is a run without hooks whose record says nothing else. It is
// comparable with ==.
type HookSettings struct {
	// Before and After are the hooks' specs; "" for none.
	Before string `json:"before_reset,omitempty"`
	After  string `json:"after_reset,omitempty"`
	// Timeout bounds one hook; Failure is "abandon" or "continue";
	// Concurrency is how many before-hooks (and after-hooks) run at once.
	Timeout     time.Duration `json:"timeout,omitempty"`
	Failure     string        `json:"failure,omitempty"`
	Concurrency int           `json:"concurrency,omitempty"`
}

// MarshalJSON writes Timeout as a duration people read ("5m0s"), not a
// count of nanoseconds.
func (h HookSettings) MarshalJSON() ([]byte, error) {
	type plain HookSettings
	var timeout string
	if h.Timeout != 0 {
		timeout = h.Timeout.String()
	}
	return json.Marshal(struct {
		plain
		Timeout string `json:"timeout,omitempty"`
	}{plain(h), timeout})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *HookSettings) UnmarshalJSON(b []byte) error {
	type plain HookSettings
	var v struct {
		plain
		Timeout string `json:"timeout,omitempty"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*h = HookSettings(v.plain)
	if v.Timeout != "" {
		d, err := time.ParseDuration(v.Timeout)
		if err != nil {
			return fmt.Errorf("hook timeout: %w", err)
		}
		h.Timeout = d
	}
	return nil
}

// None reports whether the settings name no hook.
func (h HookSettings) None() bool { return h.Before == "" && h.After == "" }

// String describes the hooks as their flags would give them, in one line:
// "none" when there are none.
func (h HookSettings) String() string {
	if h.None() {
		return "none"
	}
	var parts []string
	if h.Before != "" {
		parts = append(parts, "--before-reset "+h.Before)
	}
	if h.After != "" {
		parts = append(parts, "--after-reset "+h.After)
	}
	parts = append(parts, fmt.Sprintf("--hook-timeout %s --hook-failure %s --hook-concurrency %d", h.Timeout, h.Failure, h.Concurrency))
	return strings.Join(parts, " ")
}
