// Package snssink publishes alerts to an SNS topic, which notifies ops and
// triggers the command Lambda.
//
// The shard loop hands alerts to a bounded queue and never waits on SNS
// or on the dead-letter store: when the queue is full, or an alert still
// fails after the SDK's retries (exponential backoff with jitter), the
// alert goes to a second bounded queue, whose goroutine (started by Run)
// calls the DeadLetter function, and is counted. An alert that finds both
// queues full is counted as lost (it is still in the alerts dataset,
// written with its batch). Run's goroutine owns the client side of the
// queues.
//
// Each message is readable by people and by programs: a Subject of at
// most 100 characters, MessageStructure=json with plain text for email and
// SMS and the full alert as JSON for Lambda, SQS and HTTP subscribers, and
// MessageAttributes (severity, rule, device_id, metric, state, kind) for
// subscription filter policies. On FIFO topics the device is the message
// group and the alert id deduplicates.
package snssink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows/rules"
)

// Options configure a Publisher.
type Options struct {
	TopicARN    string
	QueueSize   int // alerts waiting to be published; default 1024
	MaxAttempts int // per alert, the first included; default 6
	// MACKey, when set, signs every alert message published
	// (schemas.AlertMessage.Sign) so the command Lambda can tell the
	// service's alerts from anyone else's; at least
	// schemas.MinMACKey bytes.
	MACKey []byte
	// DeadLetter receives alerts that could not be published, with why,
	// on one goroutine that Run starts. It may wait (an S3 PUT); the
	// shard loop does not wait for it. Required.
	DeadLetter func(a *rules.Alert, err error)
}

// ErrQueueFull is passed to DeadLetter for alerts that found the queue
// full: SNS is slower than alerts arrive, or down.
var ErrQueueFull = errors.New("snssink: queue full")

// ErrClosed is passed to DeadLetter for alerts enqueued after Close.
var ErrClosed = errors.New("snssink: publisher closed")

// Publisher sends alerts. Create it with New, start Run in a goroutine,
// Enqueue from the shard loop, and Close when done.
type Publisher struct {
	client *sns.Client
	opts   Options
	queue  chan *rules.Alert
	dead   chan deadLetter // to DeadLetter, drained by Run's goroutine

	mu         sync.Mutex // guards closed and deadClosed against Enqueue racing Close and Run's end
	closed     bool
	deadClosed bool

	// Sent were published; Failed were refused by SNS after retries;
	// Dropped found the queue full or closed; Lost found the dead-letter
	// queue full too (or came after Run ended).
	Sent, Failed, Dropped, Lost atomic.Uint64
}

type deadLetter struct {
	a   *rules.Alert
	why error
}

// New returns a Publisher; it starts nothing.
func New(cfg aws.Config, o Options) (*Publisher, error) {
	if o.TopicARN == "" || o.DeadLetter == nil {
		return nil, errors.New("snssink: a topic ARN and a DeadLetter function are required")
	}
	if o.MACKey != nil && len(o.MACKey) < schemas.MinMACKey {
		return nil, fmt.Errorf("snssink: MAC key of %d bytes: at least %d", len(o.MACKey), schemas.MinMACKey)
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	client := sns.NewFromConfig(cfg, func(so *sns.Options) {
		so.Retryer = retry.NewStandard(func(ro *retry.StandardOptions) {
			ro.MaxAttempts = o.MaxAttempts
			ro.MaxBackoff = 10 * time.Second
		})
	})
	return &Publisher{client: client, opts: o, queue: make(chan *rules.Alert, o.QueueSize), dead: make(chan deadLetter, o.QueueSize)}, nil
}

// Enqueue hands an alert to the publisher without blocking, on SNS or on
// the dead-letter store. It reports false when the alert was handed to
// the dead-letter queue instead (queue full or closed), or lost.
func (p *Publisher) Enqueue(a *rules.Alert) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	why := ErrClosed
	if !p.closed {
		select {
		case p.queue <- a:
			return true
		default:
			why = ErrQueueFull
		}
	}
	p.Dropped.Add(1)
	if p.deadClosed {
		p.Lost.Add(1)
		return false
	}
	select {
	case p.dead <- deadLetter{a, why}:
	default:
		p.Lost.Add(1)
	}
	return false
}

// Close stops accepting alerts; Run publishes what is queued and returns.
// Safe to call twice.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
}

// Run publishes queued alerts until Close was called and the queue is
// empty. If ctx ends first, the alerts still queued are dead-lettered.
// It returns once every dead letter was handed to DeadLetter. Call it
// once.
func (p *Publisher) Run(ctx context.Context) {
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for d := range p.dead {
			p.opts.DeadLetter(d.a, d.why)
			if d.a.Done != nil { // in S3 for tapline redrive-alerts
				d.a.Done()
			}
		}
	}()
	defer func() {
		p.mu.Lock()
		p.deadClosed = true
		close(p.dead)
		p.mu.Unlock()
		<-drained
	}()
	for {
		select {
		case a, ok := <-p.queue:
			if !ok {
				return
			}
			p.publish(ctx, a)
		case <-ctx.Done():
			for {
				select {
				case a, ok := <-p.queue:
					if !ok {
						return
					}
					p.Dropped.Add(1)
					p.dead <- deadLetter{a, ctx.Err()}
				default:
					return
				}
			}
		}
	}
}

func (p *Publisher) publish(ctx context.Context, a *rules.Alert) {
	in, err := Input(a, p.opts.TopicARN, p.opts.MACKey)
	if errors.Is(err, ErrTooLarge) && len(a.Group) > 0 {
		// A group whose alerts do not fit one message goes as two; it
		// is delivered when both are.
		k := len(a.Group) / 2
		first, second := *a, a.Group[k]
		first.Group, second.Group = a.Group[:k], a.Group[k+1:]
		if a.Done != nil {
			var halves atomic.Int32
			first.Done = func() {
				if halves.Add(1) == 2 {
					a.Done()
				}
			}
			second.Done = first.Done
		}
		p.publish(ctx, &first)
		p.publish(ctx, &second)
		return
	}
	if err == nil {
		_, err = p.client.Publish(ctx, in)
	}
	if err != nil {
		p.Failed.Add(1)
		p.dead <- deadLetter{a, fmt.Errorf("snssink: publish %s: %w", a.ID, err)}
		return
	}
	p.Sent.Add(1)
	if a.Done != nil {
		a.Done()
	}
}

// signed is a's message, signed with key if there is one.
func signed(a *rules.Alert, key []byte) (schemas.AlertMessage, error) {
	m := a.AlertMessage()
	if key == nil {
		return m, nil
	}
	return m, m.Sign(key)
}

// Subject is the alert's one-line summary, at most 100 characters as
// SNS requires: state, severity, rule, device, metric=value and the level;
// for a group, how many alerts and their devices.
func Subject(a *rules.Alert) string {
	s := fmt.Sprintf("%s %s %s %s", a.State, a.Severity, a.Rule, a.Device)
	if len(a.Group) > 0 {
		s = fmt.Sprintf("%s %s %s: %d alerts: %s", a.State, a.Severity, a.Rule, len(a.Group)+1, a.Device)
		for i := range a.Group {
			s += " " + a.Group[i].Device
		}
	} else if a.Metric != "" {
		op := ">"
		if a.Value < a.Threshold {
			op = "<"
		}
		s += fmt.Sprintf(" %s=%s %s %s", a.Metric, num(a.Value), op, num(a.Threshold))
	}
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// ErrTooLarge is Input's error for a message SNS would refuse.
var ErrTooLarge = errors.New("over the SNS message size limit")

// maxMessage is SNS's limit (256 KiB, subject and attributes included)
// less a margin for them.
const maxMessage = 256*1024 - 4096

// Input builds the Publish request for an alert on topic, its message
// signed with key if there is one.
func Input(a *rules.Alert, topic string, key []byte) (*sns.PublishInput, error) {
	m, err := signed(a, key)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	text := Subject(a) + "\n\n" + a.Message + "\nat " + schemas.AlertTime(a.At) + "\nalert " + a.ID + ", incident " + a.Incident
	for i := range a.Group {
		g := &a.Group[i]
		text += "\n\n" + Subject(g) + "\n" + g.Message + "\nat " + schemas.AlertTime(g.At) + "\nalert " + g.ID + ", incident " + g.Incident
	}
	msg, err := json.Marshal(map[string]string{
		"default": text,
		"email":   text,
		"sms":     Subject(a),
		"lambda":  string(body),
		"sqs":     string(body),
		"http":    string(body),
		"https":   string(body),
	})
	if err != nil {
		return nil, err
	}
	if len(msg) > maxMessage {
		return nil, fmt.Errorf("snssink: alert %s: message of %d bytes: %w", a.ID, len(msg), ErrTooLarge)
	}
	attr := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	in := &sns.PublishInput{
		TopicArn:         aws.String(topic),
		Subject:          aws.String(Subject(a)),
		Message:          aws.String(string(msg)),
		MessageStructure: aws.String("json"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"severity":  attr(a.Severity),
			"rule":      attr(a.Rule),
			"device_id": attr(a.Device),
			"state":     attr(string(a.State)),
			"kind":      attr(a.Kind),
		},
	}
	if a.Metric != "" {
		in.MessageAttributes["metric"] = attr(a.Metric)
	}
	if len(a.Group) > 0 {
		in.MessageAttributes["group_size"] = types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(len(a.Group) + 1))}
	}
	if strings.HasSuffix(topic, ".fifo") {
		in.MessageGroupId = aws.String(a.Device)
		in.MessageDeduplicationId = aws.String(a.ID)
	}
	return in, nil
}

// Store keeps immutable objects; s3sink.Store is one.
type Store interface {
	Put(ctx context.Context, key string, data []byte) (bool, error)
}

// deadAlert is the line DeadLetterTo stores and Redrive reads.
type deadAlert struct {
	Reason string               `json:"reason"`
	Error  string               `json:"error"`
	Alert  schemas.AlertMessage `json:"alert"`
}

const reasonNotPublished = "alert_not_published"

// DeadLetterTo returns a DeadLetter function that stores each alert that
// could not be published as one JSON line under the dead-letter prefix
// (layout.AlertDeadLetterKey), with the reason, its message signed with
// macKey if there is one (Redrive verifies it). The store must be safe
// for concurrent use: Run calls it from its own goroutine. Alerts that
// cannot even be stored are reported to onErr.
func DeadLetterTo(store Store, prefix string, macKey []byte, onErr func(error)) func(*rules.Alert, error) {
	return func(a *rules.Alert, why error) {
		key, err := layout.AlertDeadLetterKey(prefix, a.At, a.ID, string(a.State))
		var m schemas.AlertMessage
		if err == nil {
			m, err = signed(a, macKey)
		}
		if err == nil {
			var line []byte
			line, err = json.Marshal(deadAlert{reasonNotPublished, why.Error(), m})
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err = store.Put(ctx, key, append(line, '\n'))
				cancel()
			}
		}
		if err != nil {
			onErr(fmt.Errorf("snssink: dead letter for alert %s: %w", a.ID, err))
		}
	}
}
