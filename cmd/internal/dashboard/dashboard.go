// Package dashboard serves tapline's live dashboard: a page of the
// project's own (static/, embedded: no build step, no npm at run time)
// that subscribes to the live summaries (package sinks/live) with MQTT
// over WebSockets, and its config.json, which tells the page where the
// broker is and which commands an operator may ask for.
package dashboard

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Config is what the page reads from config.json.
type Config struct {
	App  string `json:"app"`
	Root string `json:"root"` // the live topics' prefix: tapline/live/{app}/
	// WS is the broker's WebSocket URL; empty: WSPort on the page's host.
	WS      string   `json:"ws,omitempty"`
	WSPort  int      `json:"ws_port,omitempty"`
	Actions []string `json:"actions"` // the command policy's allow-list
	Metric  string   `json:"metric"`  // the sparklines' metric at first
}

// Handler serves the page and its config.
func Handler(c Config) http.Handler {
	files, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(files))
	body, _ := json.Marshal(c)
	mux.HandleFunc("/config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(body)
	})
	return securityHeaders(mux)
}

// securityHeaders keeps the page to its own scripts and its broker.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}
