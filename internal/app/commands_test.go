package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/app"
	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

// run runs one kinlink command to completion with env and returns its output.
func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = app.Run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestBadSettingsStopWithOneClearLine(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "a-file")
	os.WriteFile(blocker, []byte("x"), 0o600)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"smtp tls", map[string]string{"KINLINK_SMTP_TLS": "ssl"}, nil, `KINLINK_SMTP_TLS is "ssl"; accepted: none, starttls, tls`},
		{"flag wins and is named", nil, []string{"--log-format", "xml"}, `--log-format is "xml"; accepted: text, json`},
		{"address", map[string]string{"KINLINK_ADDR": "8080"}, nil, "KINLINK_ADDR"},
		{"base url", map[string]string{"KINLINK_BASE_URL": "kinlink.example.org"}, nil, "KINLINK_BASE_URL"},
		{"database", map[string]string{"KINLINK_DATABASE": "mysql://x"}, nil, "KINLINK_DATABASE"},
		{"smtp port", map[string]string{"KINLINK_SMTP_PORT": "70000"}, nil, "KINLINK_SMTP_PORT"},
		{"mail from", map[string]string{"KINLINK_MAIL_FROM": "not an address"}, nil, "KINLINK_MAIL_FROM"},
		{"log level", map[string]string{"KINLINK_LOG_LEVEL": "loud"}, nil, "KINLINK_LOG_LEVEL"},
		{"tls half set", map[string]string{"KINLINK_TLS_CERT": "/x.pem"}, nil, "KINLINK_TLS_KEY"},
		{"unknown flag", nil, []string{"--colour"}, "colour"},
		{"data folder blocked", map[string]string{"KINLINK_DATA_DIR": filepath.Join(blocker, "data"), "KINLINK_DATABASE": "sqlite:" + filepath.Join(dir, "k.db")}, nil, "data folder"},
		{"media kind", map[string]string{"KINLINK_MEDIA": "ftp"}, nil, `KINLINK_MEDIA is "ftp"; accepted: disk or s3`},
		{"s3 half set", map[string]string{"KINLINK_MEDIA": "s3", "KINLINK_S3_ENDPOINT": "https://s3.example.org", "KINLINK_S3_BUCKET": "photos"}, nil,
			"KINLINK_MEDIA is s3, which also needs KINLINK_S3_ACCESS_KEY, KINLINK_S3_SECRET_KEY"},
		{"s3 settings without s3", map[string]string{"KINLINK_S3_BUCKET": "photos"}, nil, "setting KINLINK_S3_BUCKET is given but KINLINK_MEDIA is disk"},
		{"s3 endpoint with the bucket in it", map[string]string{"KINLINK_S3_ENDPOINT": "https://s3.example.org/photos"}, nil, "KINLINK_S3_ENDPOINT"},
		{"s3 endpoint with a key in it", map[string]string{"KINLINK_S3_ENDPOINT": "https://AKIAX:secretpw@s3.example.org"}, nil, `KINLINK_S3_ENDPOINT is "https://…@s3.example.org"`},
		{"database url with a password", map[string]string{"KINLINK_DATABASE": "mysql://kinlink:secretpw@db.internal/kinlink"}, nil, `KINLINK_DATABASE is "mysql://…@db.internal/kinlink"`},
		{"s3 endpoint without scheme", map[string]string{"KINLINK_S3_ENDPOINT": "s3.example.org"}, nil, "KINLINK_S3_ENDPOINT"},
		{"unreachable s3", map[string]string{"KINLINK_DATA_DIR": dir, "KINLINK_DATABASE": "sqlite:" + filepath.Join(dir, "s3.db"), "KINLINK_MEDIA": "s3",
			"KINLINK_S3_ENDPOINT": "http://127.0.0.1:1", "KINLINK_S3_BUCKET": "photos", "KINLINK_S3_ACCESS_KEY": "AKIA", "KINLINK_S3_SECRET_KEY": "secretpw"}, nil,
			`cannot reach bucket "photos" at 127.0.0.1:1`},
		{"unreachable postgres", map[string]string{"KINLINK_DATA_DIR": dir, "KINLINK_DATABASE": "postgres://kinlink:secretpw@127.0.0.1:1/kinlink"}, nil, "cannot reach PostgreSQL at 127.0.0.1:1/kinlink"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.env, append([]string{"serve"}, tc.args...)...)
			if err == nil {
				t.Fatal("kinlink started")
			}
			line := app.OneLine(err)
			if !strings.Contains(line, tc.want) {
				t.Errorf("error %q does not contain %q", line, tc.want)
			}
			if strings.Contains(line, "secretpw") || strings.Contains(line, "goroutine") {
				t.Errorf("error leaks a password or a stack: %q", line)
			}
		})
	}
}

func TestHelpListsEverySettingWithItsVariable(t *testing.T) {
	out, _, err := run(t, nil, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"KINLINK_ADDR", "KINLINK_BASE_URL", "KINLINK_DATABASE", "KINLINK_DATA_DIR", "KINLINK_SMTP_HOST", "KINLINK_SMTP_PORT",
		"KINLINK_SMTP_TLS", "KINLINK_SMTP_USER", "KINLINK_SMTP_PASSWORD", "KINLINK_MAIL_FROM", "KINLINK_LOG_FORMAT", "KINLINK_LOG_LEVEL",
		"KINLINK_MEDIA", "KINLINK_S3_ENDPOINT", "KINLINK_S3_BUCKET", "KINLINK_S3_REGION", "KINLINK_S3_PREFIX", "KINLINK_S3_ACCESS_KEY", "KINLINK_S3_SECRET_KEY"} {
		if !strings.Contains(out, name) {
			t.Errorf("--help does not list %s", name)
		}
	}
	if _, _, err := run(t, nil, "frobnicate"); !app.IsUsage(err) {
		t.Errorf("unknown command: %v", err)
	}
	if out, _, _ := run(t, nil, "version"); !strings.HasPrefix(out, "kinlink ") {
		t.Errorf("version printed %q", out)
	}
}

func TestMigrateCommandAndNewerSchemaRefusal(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			env := map[string]string{"KINLINK_DATABASE": e.Setting, "KINLINK_DATA_DIR": t.TempDir()}
			out, _, err := run(t, env, "migrate")
			if err != nil || !strings.Contains(out, "applied 0001_jobs") {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			out, _, err = run(t, env, "migrate")
			if err != nil || strings.Contains(out, "applied") {
				t.Fatalf("second migrate: %v\n%s", err, out)
			}
			db := dbtest.Open(t, e.Setting)
			if _, err := db.Write().Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', $1)", time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			_, _, err = run(t, env, "serve")
			if err == nil || !strings.Contains(err.Error(), "newer than this kinlink") || !strings.Contains(err.Error(), "999") {
				t.Fatalf("serve on a newer schema: %v", err)
			}
		})
	}
}

// Operator commands (admin, roster, migrate, jobs) leave VideoGrams alone: no
// uploads or work folder appears in the data folder, and ffmpeg is not looked
// for. Only the commands that serve set them up.
func TestOnlyServingCommandsSetUpVideoGrams(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			data := t.TempDir()
			env := map[string]string{"KINLINK_DATABASE": e.Setting, "KINLINK_DATA_DIR": data, "KINLINK_LOG_LEVEL": "warn"}
			roster := filepath.Join(t.TempDir(), "roster.csv")
			os.WriteFile(roster, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\nA100,García,José,FSP,B-12,active,\n"), 0o600)
			for _, args := range [][]string{
				{"migrate"},
				{"admin", "create-agency", "--code", "FLDOC", "--name", "Florida Department of Corrections", "--state", "FL"},
				{"admin", "create-facility", "--agency", "FLDOC", "--code", "FSP", "--name", "Florida State Prison",
					"--type", "prison", "--timezone", "America/New_York", "--population", "1400"},
				{"roster", "import", "--agency", "FLDOC", roster, "--apply"},
				{"jobs"},
			} {
				if out, errOut, err := run(t, env, args...); err != nil {
					t.Fatalf("kinlink %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
				}
				for _, dir := range []string{"uploads", "work"} {
					if _, err := os.Stat(filepath.Join(data, dir)); err == nil {
						t.Fatalf("kinlink %s made %s in the data folder", strings.Join(args, " "), dir)
					}
				}
			}
			apptest.Start(t, "serve", e.Setting, map[string]string{"KINLINK_DATA_DIR": data})
			if st, err := os.Stat(filepath.Join(data, "uploads")); err != nil || !st.IsDir() {
				t.Errorf("the server has no uploads folder: %v", err)
			}
		})
	}
}

// Issue 13, item 30: with KINLINK_LOG_FORMAT=json every line the server prints, on
// stdout and on stderr, is JSON; where it listens is a field a program can read.
func TestJSONLogsAreJSONEveryLine(t *testing.T) {
	env := map[string]string{"KINLINK_ADDR": "127.0.0.1:0", "KINLINK_METRICS_ADDR": "127.0.0.1:0", "KINLINK_DATA_DIR": t.TempDir(),
		"KINLINK_DATABASE": dbtest.Engines(t)[0].Setting, "KINLINK_LOG_FORMAT": "json", "KINLINK_LOG_LEVEL": "error"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve"}, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(stdout.String(), "\n") {
			var v struct{ URL string }
			if json.Unmarshal([]byte(line), &v) == nil && v.URL != "" {
				url = v.URL
			}
		}
	}
	if url == "" {
		t.Fatalf("no JSON line with the url:\n%s", stdout.String())
	}
	res, err := http.Get(url + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line != "" && !json.Valid([]byte(line)) {
				t.Errorf("a line on %s is not JSON: %q", name, line)
			}
		}
	}
	if !strings.Contains(stdout.String(), `"metrics_url":"http://127.0.0.1:`) {
		t.Errorf("the metrics listener is not told:\n%s", stdout.String())
	}
}

// Issue 13, item 29: a demo whose residents were released (by a roster applied while
// trying it) no longer starts; it says why and how to start afresh, instead of
// "demo resident D1002: <nil>".
func TestDemoSaysHowToStartAfresh(t *testing.T) {
	data := t.TempDir()
	setting := "sqlite:" + filepath.Join(data, "kinlink.db")
	env := map[string]string{"KINLINK_ADDR": "127.0.0.1:0", "KINLINK_METRICS_ADDR": "off", "KINLINK_DATA_DIR": data, "KINLINK_DATABASE": setting, "KINLINK_LOG_LEVEL": "error"}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"demo"}, func(k string) string { return env[k] }, &out, io.Discard)
	}()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "Ctrl+C"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not start:\n%s", out.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(context.Background(), setting)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write().Exec("UPDATE residents SET status = 'released' WHERE resident_number = 'D1002'"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = app.Run(context.Background(), []string{"demo"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "D1002 is no longer at a facility") || !strings.Contains(err.Error(), data) ||
		!strings.Contains(err.Error(), "start the demo afresh") || strings.Contains(err.Error(), "<nil>") {
		t.Fatalf("a demo whose resident was released: %v", err)
	}
}

// Issue 13, item 28: every command's --help answers 0 with its own flags first and
// says where the server's settings are listed, instead of an error or the server's
// forty-line table.
func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"admin", "--help"}, "kinlink admin create-staff"},
		{[]string{"admin", "create-staff", "--help"}, "--role ROLE"},
		{[]string{"admin", "create-facility", "-h"}, "--timezone ZONE"},
		{[]string{"roster", "--help"}, "kinlink roster import"},
		{[]string{"roster", "import", "--help"}, "--allow-mass-release"},
		{[]string{"audit", "--help"}, "kinlink audit verify"},
		{[]string{"audit", "verify", "--help"}, "chain of hashes"},
		{[]string{"ledger", "--help"}, "kinlink ledger verify"},
		{[]string{"ledger", "reconcile", "--help"}, "--day YYYY-MM-DD"},
		{[]string{"jobs", "--help"}, "--state STATE"},
		{[]string{"jobs", "retry", "--help"}, "kinlink jobs retry ID"},
		{[]string{"mail-test", "--help"}, "--to ADDRESS"},
		{[]string{"migrate", "--help"}, "schema up to date"},
	} {
		out, errOut, err := run(t, nil, c.args...)
		if err != nil || errOut != "" || !strings.HasPrefix(out, "Usage: kinlink "+c.args[0]) || !strings.Contains(out, c.want) {
			t.Errorf("%v: %v\n%s%s", c.args, err, out, errOut)
		}
		if strings.Contains(out, "KINLINK_SMTP_HOST") || !strings.Contains(out, "--help") {
			t.Errorf("%v: the server's table, or no pointer to it:\n%s", c.args, out)
		}
	}
}

// syncBuffer is a buffer the server writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Once serve is answering, ending its context stops it cleanly: it returns no error
// and its port no longer takes connections.
func TestServeStopsGracefullyOnSignal(t *testing.T) {
	env := map[string]string{"KINLINK_ADDR": "127.0.0.1:0", "KINLINK_METRICS_ADDR": "off", "KINLINK_DATA_DIR": t.TempDir(), "KINLINK_DATABASE": dbtest.Engines(t)[0].Setting, "KINLINK_LOG_LEVEL": "error"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() {
		done <- app.Run(ctx, []string{"serve"}, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	// Wait for the fact, not for time: the server says where it listens, then answers.
	listening := regexp.MustCompile(`listening on (http://\S+)`)
	base := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case base <- m[1]:
				default:
				}
			}
		}
	}()
	var addr string
	select {
	case addr = <-base:
	case err := <-done:
		t.Fatalf("serve stopped before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve never said it was listening")
	}
	res, err := http.Get(addr + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("readyz of a running server: %v %v", res, err)
	}
	res.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after its context ended", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	if res, err := client.Get(addr + "/readyz"); err == nil {
		res.Body.Close()
		t.Errorf("the port still answers after serve stopped: %d", res.StatusCode)
	}
}

func TestMailTestCommandSendsThroughSMTP(t *testing.T) {
	srv := mailtest.Start(t)
	env := map[string]string{
		"KINLINK_DATABASE": dbtest.Engines(t)[0].Setting, "KINLINK_DATA_DIR": t.TempDir(),
		"KINLINK_SMTP_HOST": srv.Host, "KINLINK_SMTP_PORT": srv.PortString(), "KINLINK_SMTP_TLS": "none",
		"KINLINK_MAIL_FROM": "Kinlink <no-reply@kinlink.example.org>", "KINLINK_LOG_LEVEL": "error",
	}
	out, _, err := run(t, env, "mail-test", "--to", "operator@example.org", "--lang", "es")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "test mail sent to operator@example.org") {
		t.Errorf("output: %s", out)
	}
	got := srv.WaitFor(t, 1, 10*time.Second)
	if got[0].To[0] != "operator@example.org" || got[0].Subject != "Mensaje de prueba de Kinlink" {
		t.Fatalf("arrived: %+v", got[0])
	}
	out, _, err = run(t, env, "jobs")
	if err != nil || !strings.Contains(out, "1 succeeded") || !strings.Contains(out, "mail.send") {
		t.Fatalf("jobs: %v\n%s", err, out)
	}
}

func TestMailWithoutSMTPGoesToTheOutbox(t *testing.T) {
	data := t.TempDir()
	env := map[string]string{"KINLINK_DATABASE": "sqlite:" + filepath.Join(data, "k.db"), "KINLINK_DATA_DIR": data, "KINLINK_LOG_LEVEL": "error"}
	out, _, err := run(t, env, "mail-test", "--to", "operator@example.org")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	if len(files) != 1 || !strings.Contains(out, filepath.Join(data, "outbox")) {
		t.Fatalf("outbox files %v; output %s", files, out)
	}
}

func TestFailedMailShowsInJobsAndCanBeRetried(t *testing.T) {
	data := t.TempDir()
	env := map[string]string{"KINLINK_DATABASE": "sqlite:" + filepath.Join(data, "k.db"), "KINLINK_DATA_DIR": data, "KINLINK_LOG_LEVEL": "error",
		"KINLINK_SMTP_HOST": "127.0.0.1", "KINLINK_SMTP_PORT": "1", "KINLINK_SMTP_TLS": "none"}
	_, _, err := run(t, env, "mail-test", "--to", "operator@example.org")
	if err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("mail-test with no SMTP server: %v", err)
	}
	out, _, err := run(t, env, "jobs", "--state", "available")
	if err != nil || !strings.Contains(out, "connection refused") {
		t.Fatalf("jobs does not show the error: %v\n%s", err, out)
	}
	if _, _, err := run(t, env, "jobs", "retry", "1"); err == nil || !strings.Contains(err.Error(), "not a failed job") {
		t.Fatalf("retrying a job that is still queued: %v", err)
	}
}

func TestDemoPrintsLoginsThatWork(t *testing.T) {
	setting := dbtest.Engines(t)[0].Setting
	in := apptest.Start(t, "demo", setting, nil)
	out := in.WaitStdout(t, "Stop with Ctrl+C")
	if !strings.Contains(out, "outbox") || !strings.Contains(out, "http://localhost:8080") {
		t.Fatalf("demo output:\n%s", out)
	}
	login := regexp.MustCompile(`Family login \([^)]*\): (\S+) / (.+) \(security`).FindStringSubmatch(out)
	if login == nil {
		t.Fatalf("the demo prints no family login:\n%s", out)
	}
	res, _ := in.JSON(t, "POST", "/api/v1/login", map[string]any{"email": login[1], "password": login[2]})
	if res.StatusCode != 200 {
		t.Fatalf("the printed demo login does not work: %d %s", res.StatusCode, res.Raw)
	}
	// The printed staff login and kiosk code work too.
	staff := regexp.MustCompile(`facility_admin\s+(\S+)\s+secret (\S+)`).FindStringSubmatch(out)
	pw := regexp.MustCompile(`password "([^"]+)" for everyone`).FindStringSubmatch(out)
	if staff == nil || pw == nil {
		t.Fatalf("no staff login printed:\n%s", out)
	}
	form := func(v url.Values) io.Reader { return strings.NewReader(v.Encode()) }
	ct := []string{"Content-Type", "application/x-www-form-urlencoded"}
	apptest.Body(t, in.Do(t, "POST", "/facility/login", form(url.Values{"email": {staff[1]}, "password": {pw[1]}}), ct...))
	code, _ := totp.GenerateCode(staff[2], time.Now().Add(30*time.Second))
	done := in.Do(t, "POST", "/facility/code", form(url.Values{"code": {code}}), ct...)
	apptest.Body(t, done)
	if done.StatusCode != http.StatusSeeOther || done.Header.Get("Location") != "/facility" {
		t.Fatalf("the printed staff login does not work: %d", done.StatusCode)
	}
	// The finance officer's too, and it opens the deposits.
	finance := regexp.MustCompile(`finance\s+(finance@example.org)\s+secret (\S+)`).FindStringSubmatch(out)
	if finance == nil {
		t.Fatalf("no finance login printed:\n%s", out)
	}
	office := apptest.Attach(t, in)
	apptest.Body(t, office.Do(t, "POST", "/facility/login", form(url.Values{"email": {finance[1]}, "password": {pw[1]}}), ct...))
	code, _ = totp.GenerateCode(finance[2], time.Now().Add(30*time.Second))
	apptest.Body(t, office.Do(t, "POST", "/facility/code", form(url.Values{"code": {code}}), ct...))
	if res := office.Get(t, "/facility/deposits"); apptest.Body(t, res) == "" || res.StatusCode != http.StatusOK {
		t.Fatalf("the printed finance login does not open the deposits: %d", res.StatusCode)
	}
	kiosk := regexp.MustCompile(`with code (\S+) `).FindStringSubmatch(out)
	resident := regexp.MustCompile(`resident (D\d+) .*, PIN (\d+)`).FindStringSubmatch(out)
	if kiosk == nil || resident == nil {
		t.Fatalf("no kiosk code or resident printed:\n%s", out)
	}
	device := apptest.Attach(t, in)
	apptest.Body(t, device.Do(t, "POST", "/kiosk/enrol", form(url.Values{"code": {kiosk[1]}}), ct...))
	login2 := device.Do(t, "POST", "/kiosk/login", form(url.Values{"resident_id": {resident[1]}, "pin": {resident[2]}}), ct...)
	if apptest.Body(t, login2); login2.StatusCode != http.StatusSeeOther {
		t.Fatalf("the printed resident login does not work on the printed kiosk: %d", login2.StatusCode)
	}

	// María's wallet is funded once ($50), and paid for her four messages: one
	// answered (10¢), one with a photo the reviewer approved (20¢), two waiting in
	// review for a watch-list word (10¢ each).
	_, tok := in.JSON(t, "POST", "/api/v1/login", map[string]any{"email": login[1], "password": login[2]})
	auth := []string{"Authorization", "Bearer " + tok["token"].(string)}
	_, wallet := in.JSON(t, "GET", "/api/v1/wallet", nil, auth...)
	if wallet["balance_cents"] != float64(4950) {
		t.Errorf("demo wallet: %v", wallet)
	}
	_, people := in.JSON(t, "GET", "/api/v1/contacts", nil, auth...)
	contact := people["contacts"].([]any)[0].(map[string]any)["id"].(string)
	res, conv := in.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, auth...)
	if msgs, _ := conv["messages"].([]any); len(msgs) != 5 || !strings.Contains(res.Raw, `"from_resident"`) || !strings.Contains(res.Raw, `"in_review"`) ||
		!regexp.MustCompile(`"photos":\["/api/v1/photos/[0-9a-f]+"\],"state":"delivered"`).MatchString(res.Raw) {
		t.Errorf("demo conversation: %s", res.Raw)
	}

	// Seeding again changes nothing and does not fail.
	again := apptest.Start(t, "demo", setting, nil)
	again.WaitStdout(t, "Stop with Ctrl+C")
	_, wallet = again.JSON(t, "GET", "/api/v1/wallet", nil, auth...)
	if res, conv := again.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, auth...); len(conv["messages"].([]any)) != 5 {
		t.Errorf("a second demo run changed the conversation: %s", res.Raw)
	}
	if wallet["balance_cents"] != float64(4950) {
		t.Errorf("a second demo run changed the wallet: %v", wallet)
	}
}
