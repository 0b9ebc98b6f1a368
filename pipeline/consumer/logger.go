package consumer

import (
	"fmt"
	"log/slog"

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
