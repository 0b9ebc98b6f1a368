// Package command turns alerts into commands to devices and delivers
// them: the command Lambda (cmd/commander) runs it on the SNS alerts, and
// the simulated devices (cmd/internal/fleet) obey what it sends.
//
// A command is an allow-listed action with the device state it desires
// ({"valve": "closed"}), decided by a policy (YAML) from an alert's rule
// and state, or asked for by an operator. Device ids, actions and state
// are validated before they reach a topic name or a shadow. A command's id
// is derived from what caused it (the alert id and the action), so the
// same alert delivered twice yields the same command twice, which the
// shadow (a desired state, with the id as clientToken) and devices (which
// remember recent ids) apply once.
package command

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tapline/tapline/schemas"
)

// Command is what a device receives on its command topic.
type Command struct {
	ID       string            `json:"command_id"` // 16 hex digits
	DeviceID string            `json:"device_id"`
	Action   string            `json:"action"`
	Desired  map[string]string `json:"desired"` // the device state the action sets
	Reason   string            `json:"reason"`  // the alert or the operator
	IssuedAt time.Time         `json:"issued_at"`
}

// ID derives a command id from its cause: the same cause, the same id.
func ID(cause, deviceID, action string) string {
	h := sha256.Sum256([]byte(cause + "\x00" + deviceID + "\x00" + action))
	return hex.EncodeToString(h[:8])
}

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	valueRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
	idRE    = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// Validate checks a command before it reaches a topic or a shadow.
func (c *Command) Validate() error {
	if !idRE.MatchString(c.ID) {
		return fmt.Errorf("command: id %q is not 16 hex digits", c.ID)
	}
	if !schemas.ValidDeviceID(c.DeviceID) {
		return fmt.Errorf("command: invalid device id %q", c.DeviceID)
	}
	if !nameRE.MatchString(c.Action) {
		return fmt.Errorf("command: invalid action %q", c.Action)
	}
	if len(c.Desired) == 0 {
		return fmt.Errorf("command: %s sets no state", c.Action)
	}
	for k, v := range c.Desired {
		if !nameRE.MatchString(k) || !valueRE.MatchString(v) {
			return fmt.Errorf("command: invalid desired state %q: %q", k, v)
		}
	}
	if len(c.Reason) > 256 {
		return fmt.Errorf("command: reason longer than 256 bytes")
	}
	return nil
}

// Topic is the MQTT topic of a device's commands. The device id must be
// valid (Validate): it contains no '/', '+' or '#'.
func Topic(deviceID string) string { return "tapline/commands/" + deviceID }

// TopicFilter matches every device's command topic.
const TopicFilter = "tapline/commands/+"

// ShadowDelta is the payload AWS IoT sends on
// $aws/things/{thing}/shadow/update/delta after a desired update, in the
// part devices read.
type ShadowDelta struct {
	State       map[string]string `json:"state"`
	ClientToken string            `json:"clientToken,omitempty"`
}

// ShadowUpdate is the UpdateThingShadow document for c: its desired state
// with the command id as client token.
func ShadowUpdate(c *Command) ([]byte, error) {
	return json.Marshal(map[string]any{
		"state":       map[string]any{"desired": c.Desired},
		"clientToken": c.ID,
	})
}

// String is a one-line description for logs.
func (c *Command) String() string {
	keys := make([]string, 0, len(c.Desired))
	for k := range c.Desired {
		keys = append(keys, k+"="+c.Desired[k])
	}
	sort.Strings(keys)
	return fmt.Sprintf("%s %s %s (%s) [%s]", c.ID, c.DeviceID, c.Action, strings.Join(keys, ","), c.Reason)
}
