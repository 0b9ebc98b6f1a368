package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	kcllog "github.com/vmware/vmware-go-kcl-v2/logger"
)

// kclLogger bridges the library's logger into slog, so its lines are JSON
// like tapline's own. Its Fatalf and Panicf only log: the library calls
// them for errors a service should survive.
type kclLogger struct{ l *slog.Logger }

func (k kclLogger) Debugf(f string, a ...any) { k.l.Debug(fmt.Sprintf(f, a...)) }
func (k kclLogger) Infof(f string, a ...any)  { k.l.Debug(fmt.Sprintf(f, a...)) }
func (k kclLogger) Warnf(f string, a ...any)  { k.l.Warn(fmt.Sprintf(f, a...)) }
func (k kclLogger) Errorf(f string, a ...any) { k.l.Error(fmt.Sprintf(f, a...)) }
func (k kclLogger) Fatalf(f string, a ...any) { k.l.Error(fmt.Sprintf(f, a...)) }
func (k kclLogger) Panicf(f string, a ...any) { k.l.Error(fmt.Sprintf(f, a...)) }

func (k kclLogger) WithFields(f kcllog.Fields) kcllog.Logger {
	args := make([]any, 0, 2*len(f))
	for key, v := range f {
		args = append(args, key, v)
	}
	return kclLogger{k.l.With(args...)}
}

// Parts of the library log through logrus's global logger rather than
// the configured one; bridgeLogrus sends those lines to slog as well, to
// the logger of the latest Consumer (a process runs one).
var (
	bridgeOnce sync.Once
	bridgeTo   atomic.Pointer[slog.Logger]
)

func bridgeLogrus(l *slog.Logger) {
	bridgeTo.Store(l.With("component", "kcl"))
	bridgeOnce.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.SetLevel(logrus.InfoLevel)
		logrus.AddHook(logrusHook{})
	})
}

type logrusHook struct{}

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug // its info lines are per-poll chatter
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	}
	bridgeTo.Load().Log(context.Background(), level, e.Message)
	return nil
}
