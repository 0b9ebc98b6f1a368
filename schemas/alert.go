package schemas

import "time"

// AlertState is the state an alert notification announces. PENDING is
// internal to the rules engine and never delivered.
type AlertState string

// Alert states.
const (
	AlertFiring   AlertState = "FIRING"
	AlertResolved AlertState = "RESOLVED"
)

// AlertMessage is an alert as programs receive it: the body of the SNS
// message, the "alert" of a dead-lettered alert, and what the command
// Lambda reads. It is the one definition of that JSON; the SNS sink
// writes it and the command Lambda reads it.
//
// Times are RFC 3339 in UTC with milliseconds (AlertTime). A reader must
// treat every field as untrusted: an SNS topic and a dead-letter prefix
// can be written by other principals.
type AlertMessage struct {
	ID        string     `json:"alert_id"`    // unique per notification
	Incident  string     `json:"incident_id"` // shared by a FIRING alert and its RESOLVED
	State     AlertState `json:"state"`
	Rule      string     `json:"rule"`
	Kind      string     `json:"kind"`
	Severity  string     `json:"severity"`
	Device    string     `json:"device_id"`
	Metric    string     `json:"metric,omitempty"`      // empty for a device-level rule
	Window    string     `json:"window_spec,omitempty"` // window spec name
	Value     float64    `json:"value"`
	Threshold float64    `json:"threshold"`
	Start     string     `json:"window_start"`
	End       string     `json:"window_end"`
	At        string     `json:"at"` // event time of the transition
	Message   string     `json:"message"`
}

// AlertTime formats a Unix millisecond time as AlertMessage holds it.
func AlertTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
