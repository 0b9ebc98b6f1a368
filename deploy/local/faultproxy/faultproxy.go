// Package faultproxy is a small HTTP reverse proxy put in front of a local
// AWS stand-in (kinesalite, dynalite, versitygw, goaws). With no rule it
// only shields the server from clients killed mid-request (it forwards
// whole requests only, and finishes them whatever the client does), which
// kinesalite and dynalite do not survive. With a rule it injects the
// faults real services produce: error responses (throttling, 500, 503),
// latency, connections reset before the request reaches the server, and
// requests that succeed on the server whose response never arrives. A
// Rule sees every request (its AWS operation and count) and decides.
package faultproxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what to do with one request. The zero Fault forwards it.
type Fault struct {
	Status int    // answer with this status and Body instead of forwarding
	Body   string // JSON error document for Status
	Header map[string]string
	Delay  time.Duration // wait before forwarding (or answering)
	Reset  bool          // close the connection before forwarding
	// Lost forwards the request, then closes the connection without the
	// response: the server did the work, the client cannot know.
	Lost bool
	// After runs after the response was sent (for example, kill the
	// client process right after its S3 PUT succeeded).
	After func()
}

// Request describes a request to a Rule.
type Request struct {
	*http.Request
	Op   string // X-Amz-Target's operation (Kinesis, DynamoDB) or METHOD for S3/SNS
	Body []byte
	N    int64 // how many requests with this Op came before, plus one
}

// Rule decides each request's fault.
type Rule func(r *Request) Fault

// Proxy is a running fault proxy.
type Proxy struct {
	URL    string
	srv    *http.Server
	ln     net.Listener
	mu     sync.Mutex
	rule   Rule
	counts sync.Map // op -> *atomic.Int64
	// Injected counts the requests a fault was applied to.
	Injected atomic.Int64
}

// Start proxies to target ("http://127.0.0.1:PORT") on a free loopback port.
func Start(target string, rule Rule) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), ln: ln, rule: rule}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the client went away mid-request: forward nothing
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		// A client that dies while the server works must not abort the
		// server's side: kinesalite and dynalite crash on aborted requests.
		// The context is cut from the client's and cancellable by this
		// handler alone, after the exchange: one that can never be
		// cancelled (no Done channel) makes httputil.ReverseProxy watch
		// the client's connection instead (CloseNotify) and cancel the
		// forwarded request when it closes.
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		defer cancel()
		r = r.WithContext(ctx)
		op := r.Method
		if t := r.Header.Get("X-Amz-Target"); t != "" {
			op = t[strings.LastIndex(t, ".")+1:]
		} else if a := r.URL.Query().Get("Action"); a != "" {
			op = a
		}
		c, _ := p.counts.LoadOrStore(op, new(atomic.Int64))
		req := &Request{Request: r, Op: op, Body: body, N: c.(*atomic.Int64).Add(1)}
		p.mu.Lock()
		rule := p.rule
		p.mu.Unlock()
		var f Fault
		if rule != nil {
			f = rule(req)
		}
		if f.Status != 0 || f.Delay > 0 || f.Reset || f.Lost || f.After != nil {
			p.Injected.Add(1)
		}
		time.Sleep(f.Delay)
		switch {
		case f.Reset:
			hijackClose(w)
			return
		case f.Status != 0:
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			for k, v := range f.Header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(f.Status)
			io.WriteString(w, f.Body)
		case f.Lost:
			rp.ServeHTTP(discard{}, r)
			hijackClose(w)
			return
		default:
			rp.ServeHTTP(w, r)
		}
		if f.After != nil {
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			f.After()
		}
	})}
	go p.srv.Serve(ln)
	return p, nil
}

// SetRule replaces the rule (nil: forward everything).
func (p *Proxy) SetRule(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = r
}

// Stop closes the proxy.
func (p *Proxy) Stop() { p.srv.Close() }

func hijackClose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, as a dropped connection looks
			}
			c.Close()
		}
	}
}

// discard is a ResponseWriter that throws the response away.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// Throttle is the Kinesis error for ProvisionedThroughputExceeded.
func Throttle() Fault {
	return Fault{Status: 400, Body: `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard (injected)"}`}
}

// ExpiredIterator is the Kinesis error for an expired shard iterator.
func ExpiredIterator() Fault {
	return Fault{Status: 400, Body: `{"__type":"ExpiredIteratorException","message":"Iterator expired (injected)"}`}
}

// ServerError is a 500 (or 503 with slowDown) from any service.
func ServerError(slowDown bool) Fault {
	if slowDown {
		return Fault{Status: 503, Body: `<Error><Code>SlowDown</Code><Message>Please reduce your request rate (injected)</Message></Error>`, Header: map[string]string{"Content-Type": "application/xml"}}
	}
	return Fault{Status: 500, Body: `{"__type":"InternalServerError","message":"injected"}`}
}
