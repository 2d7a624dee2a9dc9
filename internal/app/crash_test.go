package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

// buildKinlink compiles the real binary once per test run.
func buildKinlink(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kinlink")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/kinlink/kinlink/cmd/kinlink").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// A server killed with SIGKILL while a burst of mail is queued loses none of it:
// after a restart every message is sent.
func TestMailQueuedAtACrashIsSentAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildKinlink(t)
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			const burst = 40
			srv := mailtest.Start(t)
			srv.Delay = 50 * time.Millisecond
			db := dbtest.Open(t, e.Setting)
			ctx := context.Background()
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				for i := range burst {
					if err := mail.Enqueue(ctx, db, tx, mail.Message{To: fmt.Sprintf("family%02d@example.org", i), Template: "test", Locale: "en"}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			data := t.TempDir()
			env := append(os.Environ(),
				"KINLINK_ADDR=127.0.0.1:0", "KINLINK_METRICS_ADDR=off", "KINLINK_DATABASE="+e.Setting, "KINLINK_DATA_DIR="+data,
				"KINLINK_SMTP_HOST="+srv.Host, "KINLINK_SMTP_PORT="+srv.PortString(), "KINLINK_SMTP_TLS=none",
				"KINLINK_JOB_TIMEOUT=2s", "KINLINK_LOG_LEVEL=warn")
			start := func() *exec.Cmd {
				cmd := exec.Command(bin, "serve")
				cmd.Env = env
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return cmd
			}

			first := start()
			srv.WaitFor(t, 5, 30*time.Second)
			first.Process.Signal(syscall.SIGKILL)
			first.Wait()
			sentBefore := len(srv.Messages())
			if sentBefore >= burst {
				t.Fatalf("all %d mails went out before the kill; the test proves nothing", burst)
			}

			second := start()
			t.Cleanup(func() { second.Process.Signal(syscall.SIGTERM); second.Wait() })
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				if c, _ := jobs.Counts(ctx, db); c[jobs.Succeeded] == burst {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			got := map[string]bool{}
			for _, m := range srv.Messages() {
				got[m.To[0]] = true
			}
			for i := range burst {
				if to := fmt.Sprintf("family%02d@example.org", i); !got[to] {
					t.Errorf("%s never got its mail (killed after %d of %d)", to, sentBefore, burst)
				}
			}
			if c, _ := jobs.Counts(ctx, db); c[jobs.Succeeded] != burst {
				t.Errorf("jobs after restart: %v", c)
			}
		})
	}
}
