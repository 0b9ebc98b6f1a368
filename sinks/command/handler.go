package command

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/tapline/tapline/schemas"
)

// Handler is the command Lambda's logic: SNS events carrying tapline
// alerts, or an operator's request through the function URL, whose IAM
// authentication (AWS_IAM) names the operator: the operator is the
// caller's IAM principal, never what the request says.
type Handler struct {
	Policy  *Policy
	Deliver Deliverer
	Log     *slog.Logger
	Now     func() time.Time // default time.Now
	// TopicARN is tapline's alerts topic: SNS records from anywhere else
	// (another topic, or a direct invocation shaped like an SNS event)
	// are refused. Required for SNS records.
	TopicARN string
	// MACKey is the service's alert MAC key: an alert whose MAC does not
	// verify (schemas.AlertMessage.Verify) is refused. Required for SNS
	// records.
	MACKey []byte
}

// MaxInvocation bounds an invocation's size: an SNS event carries at most
// one 256 KiB message, an operator's request a few hundred bytes.
const MaxInvocation = 512 << 10

// Result says what became of one record (an SNS record or the request).
type Result struct {
	Record  string `json:"record"`            // SNS message id, or "request"
	Status  string `json:"status"`            // sent, no_action, refused or failed
	Command string `json:"command,omitempty"` // what was sent or refused
	Error   string `json:"error,omitempty"`
}

// Response reports every record. Handle also returns an error when a
// record failed in a way a retry may fix, so Lambda retries the event;
// the records already sent are sent again with the same command ids,
// which devices apply once.
type Response struct {
	Results []Result `json:"results"`
}

// Handle processes one invocation.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (Response, error) {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	if len(raw) > MaxInvocation {
		return Response{Results: []Result{{Record: "invocation", Status: "refused", Error: fmt.Sprintf("invocation of %d bytes exceeds %d", len(raw), MaxInvocation)}}}, nil
	}
	var probe struct {
		Records        []json.RawMessage `json:"Records"`
		RequestContext json.RawMessage   `json:"requestContext"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return Response{}, fmt.Errorf("command: invocation is not JSON: %w", err)
	}
	var resp Response
	var failed error
	switch {
	case probe.RequestContext != nil:
		req, err := operatorRequest(raw)
		if err != nil {
			resp.Results = append(resp.Results, Result{Record: "request", Status: "refused", Error: err.Error()})
			h.Log.Warn("refused", "record", "request", "err", err)
			return resp, nil
		}
		h.Log.Info("operator request", "operator", req.Operator, "device_id", req.DeviceID, "action", req.Action, "request_id", req.RequestID)
		c, err := h.Policy.ForRequest(req, now())
		resp.Results = append(resp.Results, h.send(ctx, "request", c, err, &failed))
		return resp, failed
	case probe.Records == nil:
		err := errors.New("command: a direct invocation names no caller: operators use the function URL (AWS_IAM)")
		resp.Results = append(resp.Results, Result{Record: "request", Status: "refused", Error: err.Error()})
		h.Log.Warn("refused", "record", "request", "err", err)
		return resp, nil
	}
	var ev events.SNSEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return resp, fmt.Errorf("command: not an SNS event: %w", err)
	}
	for _, r := range ev.Records {
		if r.EventSource != "aws:sns" || h.TopicARN == "" || r.SNS.TopicArn != h.TopicARN {
			err := fmt.Errorf("command: record from %q, topic %q: not tapline's alerts topic", r.EventSource, r.SNS.TopicArn)
			resp.Results = append(resp.Results, Result{Record: r.SNS.MessageID, Status: "refused", Error: err.Error()})
			h.Log.Warn("refused", "record", r.SNS.MessageID, "err", err)
			continue
		}
		a, err := alertOf(r.SNS.Message)
		if err == nil {
			err = a.Verify(h.MACKey)
		}
		if err != nil {
			resp.Results = append(resp.Results, Result{Record: r.SNS.MessageID, Status: "refused", Error: err.Error()})
			h.Log.Warn("refused", "record", r.SNS.MessageID, "err", err)
			continue
		}
		// A grouped notification (the rules' route) lists several
		// alerts: each is acted on as if it had come alone.
		for i, a := range a.Alerts() {
			record := r.SNS.MessageID
			if i > 0 {
				record = fmt.Sprintf("%s#%d", record, i)
			}
			resp.Results = append(resp.Results, h.onAlert(ctx, record, a, now(), &failed))
		}
	}
	return resp, failed
}

// onAlert turns one alert into its command, if the policy has one.
func (h *Handler) onAlert(ctx context.Context, record string, a *schemas.AlertMessage, now time.Time, failed *error) Result {
	switch {
	case a.State != schemas.AlertFiring && a.State != schemas.AlertResolved:
		// Suppressed alerts are never published; one that comes anyway
		// must not reach a device.
		h.Log.Warn("refused", "record", record, "alert", a.ID, "state", a.State)
		return Result{Record: record, Status: "refused", Error: fmt.Sprintf("state %q is not FIRING or RESOLVED", a.State)}
	case a.Repeat > 0:
		// A reminder: the command went with the first notification.
		h.Log.Info("repeat of a firing alert: no command", "alert", a.ID, "rule", a.Rule, "repeat", a.Repeat)
		return Result{Record: record, Status: "no_action"}
	}
	c, ok, err := h.Policy.ForAlert(a, now)
	if !ok && err == nil {
		h.Log.Info("no command for alert", "alert", a.ID, "rule", a.Rule, "state", a.State)
		return Result{Record: record, Status: "no_action"}
	}
	return h.send(ctx, record, c, err, failed)
}

func (h *Handler) send(ctx context.Context, record string, c *Command, err error, failed *error) Result {
	if err != nil {
		h.Log.Warn("refused", "record", record, "err", err)
		return Result{Record: record, Status: "refused", Error: err.Error()}
	}
	if err := h.Deliver.Deliver(ctx, c); err != nil {
		*failed = errors.Join(*failed, fmt.Errorf("%s: %w", c.ID, err))
		h.Log.Error("delivery failed", "record", record, "command", c.String(), "err", err)
		return Result{Record: record, Status: "failed", Command: c.String(), Error: err.Error()}
	}
	h.Log.Info("command sent", "record", record, "command", c.String())
	return Result{Record: record, Status: "sent", Command: c.String()}
}

// alertOf reads tapline's alert JSON from an SNS message: the message
// itself (SNS sends a Lambda subscriber the "lambda" entry of a
// MessageStructure=json message), or one of the document's entries when a
// forwarder passed the whole document.
func alertOf(msg string) (*schemas.AlertMessage, error) {
	var a schemas.AlertMessage
	if err := json.Unmarshal([]byte(msg), &a); err == nil && a.ID != "" {
		return &a, nil
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(msg), &doc); err == nil {
		for _, key := range []string{"lambda", "http", "default"} {
			if s, ok := doc[key].(string); ok {
				if err := json.Unmarshal([]byte(s), &a); err == nil && a.ID != "" {
					return &a, nil
				}
			}
		}
	}
	return nil, errors.New("command: the SNS message is not a tapline alert")
}

// operatorRequest reads an operator's request from a function URL
// invocation: the body's device, action and request id, and the
// operator from the IAM authentication the URL requires.
func operatorRequest(raw []byte) (*Request, error) {
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("command: not a function URL request: %w", err)
	}
	a := ev.RequestContext.Authorizer
	if a == nil || a.IAM == nil || a.IAM.UserARN == "" {
		return nil, errors.New("command: the request carries no IAM identity: the function URL must use AWS_IAM")
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, fmt.Errorf("command: request body: %w", err)
		}
	}
	var b struct {
		DeviceID  string `json:"device_id"`
		Action    string `json:"action"`
		RequestID string `json:"request_id"`
	}
	if err := strictJSON(body, &b); err != nil {
		return nil, err
	}
	return &Request{DeviceID: b.DeviceID, Action: b.Action, RequestID: b.RequestID, Operator: a.IAM.UserARN}, nil
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("command: request: %w", err)
	}
	return nil
}
