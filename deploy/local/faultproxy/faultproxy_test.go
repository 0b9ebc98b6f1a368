package faultproxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestClientGoneLeavesServerAlone: a client that gives up while the
// server is working must not abort the server's request (kinesalite and
// dynalite crash on an aborted request, and take every later test with
// them). The proxy's context for the forwarded request must carry no
// cancellation from the client, and must not leave httputil.ReverseProxy
// to watch the client's connection (CloseNotify) and cancel on its own.
func TestClientGoneLeavesServerAlone(t *testing.T) {
	arrived, canceled := make(chan struct{}), make(chan bool, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		close(arrived)
		select {
		case <-r.Context().Done(): // the proxy closed its connection: an abort
			canceled <- true
			return
		case <-time.After(time.Second):
		}
		canceled <- false
		io.WriteString(w, "{}")
	}))
	defer up.Close()
	p, err := Start(up.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, strings.NewReader(`{"TableName":"t"}`))
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	<-arrived
	cancel() // the client gives up while the server works
	if err := <-done; err == nil {
		t.Fatal("the client's request succeeded after it was canceled")
	}
	if <-canceled {
		t.Fatal("the server's request was aborted when the client went away")
	}
}
