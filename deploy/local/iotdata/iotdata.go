// Package iotdata stands in for the Publish call of AWS IoT Core's data
// plane (POST /topics/{topic}, what aws-sdk-go-v2's iotdataplane client
// sends) on a loopback port, and hands each message to a local broker
// (package mqttbroker), as IoT Core hands it to its subscribers. It does
// not check signatures: the local stack has no IAM. SetDown makes it
// answer 503, a broker outage.
package iotdata

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Server is a running stand-in.
type Server struct {
	URL  string // http://127.0.0.1:PORT: the client's BaseEndpoint
	srv  *http.Server
	down atomic.Bool
}

// Start serves on a free loopback port; publish receives each message.
func Start(publish func(topic string, payload []byte) error) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /topics/", func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			http.Error(w, `{"message":"service unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		topic, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/topics/"))
		if err != nil || topic == "" || strings.ContainsAny(topic, "+#") {
			http.Error(w, `{"message":"bad topic"}`, http.StatusBadRequest)
			return
		}
		payload, err := io.ReadAll(io.LimitReader(r.Body, 128<<10+1))
		if err != nil || len(payload) > 128<<10 { // IoT Core's message size limit
			http.Error(w, `{"message":"payload too large"}`, http.StatusRequestEntityTooLarge)
			return
		}
		if err := publish(topic, payload); err != nil {
			http.Error(w, fmt.Sprintf(`{"message":%q}`, err.Error()), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// SetDown makes every publish fail (503) until SetDown(false).
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Stop closes the server.
func (s *Server) Stop() { s.srv.Close() }
