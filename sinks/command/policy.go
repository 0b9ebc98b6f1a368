package command

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapline/tapline/schemas"
)

// Policy decides which alerts become commands. Its YAML:
//
//	actions:                     # the allow-list: all a command may set
//	  close_valve: {valve: closed}
//	  open_valve: {valve: open}
//	on:                          # alert (rule, state) -> action
//	  - {rule: keg-leak, state: FIRING, action: close_valve}
//
// Operators may ask for any listed action directly; nothing else is ever
// sent.
type Policy struct {
	Actions map[string]map[string]string
	On      []Trigger
	// ThingPrefix, when set, is what every commanded device id starts
	// with: the things this deployment owns (the stack's IAM policy
	// says the same; this refuses before any call is made).
	ThingPrefix string
}

// Trigger maps an alert's rule and state to an action.
type Trigger struct {
	Rule   string
	State  schemas.AlertState
	Action string
}

type policyYAML struct {
	Actions map[string]map[string]string `yaml:"actions"`
	On      []struct {
		Rule   string `yaml:"rule"`
		State  string `yaml:"state"`
		Action string `yaml:"action"`
	} `yaml:"on"`
}

// LoadPolicy reads and validates a policy file.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePolicy(path, b)
}

// ParsePolicy validates a policy: unknown keys, actions that set nothing
// or something malformed, triggers on unknown actions or states, and a
// (rule, state) listed twice are errors naming the file.
func ParsePolicy(file string, data []byte) (*Policy, error) {
	var y policyYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{file}, args...)...))
	}
	if len(y.Actions) == 0 {
		bad("no actions: the allow-list is empty")
	}
	for name, desired := range y.Actions {
		if !nameRE.MatchString(name) {
			bad("action %q: names are lower case letters, digits and _", name)
		}
		if len(desired) == 0 {
			bad("action %q sets no state", name)
		}
		for k, v := range desired {
			if !nameRE.MatchString(k) || !valueRE.MatchString(v) {
				bad("action %q: invalid state %q: %q", name, k, v)
			}
		}
	}
	p := &Policy{Actions: y.Actions}
	seen := map[string]bool{}
	for i, t := range y.On {
		switch {
		case t.Rule == "":
			bad("on[%d]: rule is required", i)
		case t.State != string(schemas.AlertFiring) && t.State != string(schemas.AlertResolved):
			bad("on[%d]: state %q is not FIRING or RESOLVED", i, t.State)
		case y.Actions[t.Action] == nil:
			bad("on[%d]: action %q is not in actions", i, t.Action)
		case seen[t.Rule+"/"+t.State]:
			bad("on[%d]: %s %s is listed twice", i, t.Rule, t.State)
		}
		seen[t.Rule+"/"+t.State] = true
		p.On = append(p.On, Trigger{Rule: t.Rule, State: schemas.AlertState(t.State), Action: t.Action})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

//go:embed policy.yml
var defaultPolicy []byte

// Default returns the default policy (policy.yml in this package).
func Default() *Policy {
	p, err := ParsePolicy("policy.yml", defaultPolicy)
	if err != nil {
		panic(err) // TestDefaultPolicy keeps it valid
	}
	return p
}

// ErrRefused is wrapped by the errors of commands the policy does not
// allow.
var ErrRefused = errors.New("refused by the command policy")

// ForAlert returns the command an alert calls for, or ok=false when the
// policy has none for its rule and state.
func (p *Policy) ForAlert(a *schemas.AlertMessage, now time.Time) (c *Command, ok bool, err error) {
	for _, t := range p.On {
		if t.Rule != a.Rule || t.State != a.State {
			continue
		}
		if err := p.checkDevice(a.Device); err != nil {
			return nil, false, fmt.Errorf("alert %q: %w", a.ID, err)
		}
		c := &Command{ID: ID("alert:"+a.ID, a.Device, t.Action), DeviceID: a.Device, Action: t.Action,
			Desired: p.Actions[t.Action], Reason: fmt.Sprintf("%s %s (alert %s)", a.Rule, a.State, a.ID), IssuedAt: now}
		return c, true, c.Validate()
	}
	return nil, false, nil
}

// checkDevice refuses device ids that are not thing names or not this
// deployment's things.
func (p *Policy) checkDevice(id string) error {
	if !schemas.ValidDeviceID(id) {
		return fmt.Errorf("invalid device id %q: %w", id, ErrRefused)
	}
	if !strings.HasPrefix(id, p.ThingPrefix) {
		return fmt.Errorf("device %q is not one of this deployment's things (%q...): %w", id, p.ThingPrefix, ErrRefused)
	}
	return nil
}

// Request is an operator's command. Operator is who asked: the caller's
// IAM principal (the function URL's AWS_IAM authentication), at most 240
// bytes.
type Request struct {
	DeviceID  string
	Action    string
	Operator  string
	RequestID string // the same request id, the same command
}

// ForRequest returns the command an operator asked for, if allowed.
func (p *Policy) ForRequest(r *Request, now time.Time) (*Command, error) {
	desired := p.Actions[r.Action]
	if desired == nil {
		return nil, fmt.Errorf("action %q: %w", r.Action, ErrRefused)
	}
	if r.Operator == "" || r.RequestID == "" || len(r.Operator) > 240 || len(r.RequestID) > 128 {
		return nil, fmt.Errorf("operator and request_id are required (at most 240 and 128 bytes)")
	}
	if err := p.checkDevice(r.DeviceID); err != nil {
		return nil, err
	}
	c := &Command{ID: ID("request:"+r.Operator+"\x00"+r.RequestID, r.DeviceID, r.Action), DeviceID: r.DeviceID, Action: r.Action,
		Desired: desired, Reason: "operator " + r.Operator, IssuedAt: now}
	return c, c.Validate()
}
