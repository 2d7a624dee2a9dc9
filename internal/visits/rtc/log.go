package rtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs sends Pion's logs to the server's log: its warnings and errors as
// debug lines (a participant's network going away is routine for a media
// server: "use of closed network connection" at every hang-up), the rest dropped.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(string)          {}
func (l pionLogger) Debugf(string, ...any) {}
func (l pionLogger) Info(string)           {}
func (l pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)       { l.log.Log(context.Background(), slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.log.Log(context.Background(), slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l pionLogger) Error(msg string) { l.log.Log(context.Background(), slog.LevelDebug, msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.log.Log(context.Background(), slog.LevelDebug, fmt.Sprintf(format, args...))
}
