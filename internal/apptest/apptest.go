// Package apptest starts the real kinlink program inside a test, on a free port with a
// fresh database, so HTTP tests see exactly what a user would.
package apptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/app"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/jobs"
)

// Instance is a running kinlink.
type Instance struct {
	URL string // where it listens, http://127.0.0.1:PORT
	// MetricsURL is where its Prometheus metrics are, apart from the public listener.
	MetricsURL string
	Env        map[string]string
	Client     *http.Client // keeps cookies; does not follow redirects

	// OnResponse, when set, sees every answer of JSON, such as to check it against
	// the API's OpenAPI document.
	OnResponse func(t testing.TB, req *http.Request, res *Response)

	mu     sync.Mutex
	stdout strings.Builder
	done   chan error
	stop   func() // stops the program, once
}

var (
	listening  = regexp.MustCompile(`listening on (https?://\S+)`)
	metricsURL = regexp.MustCompile(`Metrics for Prometheus on (http://\S+)`)
)

// Start runs "kinlink <command>" with env on top of test defaults: a free port, a
// data folder in t.TempDir() and the given database setting. It returns once the
// server listens, and stops it when t ends.
func Start(t testing.TB, command, database string, env map[string]string) *Instance {
	t.Helper()
	dir := t.TempDir()
	full := map[string]string{
		"KINLINK_ADDR":         "127.0.0.1:0",
		"KINLINK_METRICS_ADDR": "127.0.0.1:0",
		"KINLINK_DATA_DIR":     filepath.Join(dir, "data"),
		"KINLINK_DATABASE":     database,
		"KINLINK_LOG_LEVEL":    "warn",
		"KINLINK_MEDIA_UDP":    "127.0.0.1:0", // video visits' media, where a test turns them on
	}
	for k, v := range env {
		full[k] = v
	}
	in := &Instance{Env: full, done: make(chan error, 1)}
	jar, _ := cookiejar.New(nil)
	in.Client = &http.Client{
		Jar:           localJar{jar},
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			in.mu.Lock()
			in.stdout.WriteString(line + "\n")
			if m := metricsURL.FindStringSubmatch(line); m != nil {
				in.MetricsURL = m[1]
			}
			in.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case urlCh <- m[1]:
				default:
				}
			}
		}
	}()
	logs := &testLog{t: t}
	go func() {
		err := app.Run(ctx, []string{command}, func(k string) string { return full[k] }, pw, logs)
		pw.Close()
		in.done <- err
	}()
	in.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-in.done:
			if err != nil {
				t.Errorf("kinlink stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("kinlink did not stop within 30 s of its context ending")
		}
	})
	t.Cleanup(in.stop)
	select {
	case in.URL = <-urlCh:
	case err := <-in.done:
		t.Fatalf("kinlink %s exited before listening: %v", command, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("kinlink %s did not start listening within 30 s", command)
	}
	return in
}

// Stop stops the program as an operator would (SIGTERM), and waits until it has.
func (in *Instance) Stop() { in.stop() }

// Attach returns another client of the same running server, with cookies of its
// own: a second browser or device.
func Attach(t testing.TB, in *Instance) *Instance {
	jar, _ := cookiejar.New(nil)
	return &Instance{URL: in.URL, MetricsURL: in.MetricsURL, Env: in.Env, OnResponse: in.OnResponse, done: in.done, stop: in.stop, Client: &http.Client{
		Jar: localJar{jar}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// SetCookie puts a cookie in the client's jar, as an attacker planting one would.
func (in *Instance) SetCookie(name, value string) {
	u, _ := url.Parse(in.URL)
	in.Client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true}})
}

// Stdout is what the program printed so far.
func (in *Instance) Stdout() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stdout.String()
}

// Get fetches a path with optional headers as name, value pairs.
func (in *Instance) Get(t testing.TB, path string, headers ...string) *http.Response {
	t.Helper()
	return in.Do(t, "GET", path, nil, headers...)
}

// Do sends a request and returns the response with its body read into memory.
func (in *Instance) Do(t testing.TB, method, path string, body io.Reader, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, in.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := in.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

// Body reads and closes a response body.
func Body(t testing.TB, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testLog sends the program's log to the test log, shown when a test fails.
type testLog struct {
	t  testing.TB
	mu sync.Mutex
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// WaitStdout waits until the program has printed want and returns all it printed.
func (in *Instance) WaitStdout(t testing.TB, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if out := in.Stdout(); strings.Contains(out, want) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("kinlink never printed %q; it printed:\n%s", want, in.Stdout())
	return ""
}

// JSON sends a request with a JSON body (nil for none) and decodes the JSON answer
// into a generic map (or nil when the answer has no body). It returns the response
// with its body already read into Raw.
func (in *Instance) JSON(t testing.TB, method, path string, body any, headers ...string) (*Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
		headers = append([]string{"Content-Type", "application/json"}, headers...)
	}
	res := in.Do(t, method, path, rd, headers...)
	raw := Body(t, res)
	out := &Response{Response: res, Raw: raw}
	var m map[string]any
	if strings.TrimSpace(raw) != "" && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			// Arrays and other shapes: leave m nil; Raw has the body.
			m = nil
		}
	}
	if in.OnResponse != nil {
		in.OnResponse(t, res.Request, out)
	}
	return out, m
}

// Response is a response whose body has been read.
type Response struct {
	*http.Response
	Raw string
}

// localJar treats the test server on 127.0.0.1 as the secure context browsers treat
// it as, so that Secure (__Host-) cookies are kept and sent back as Chromium does.
type localJar struct{ jar *cookiejar.Jar }

func (j localJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.jar.SetCookies(secureURL(u), cookies)
}
func (j localJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(secureURL(u)) }

func secureURL(u *url.URL) *url.URL {
	c := *u
	c.Scheme = "https"
	return &c
}

// Cookie returns the value of a cookie the client holds for the server, or "".
func (in *Instance) Cookie(name string) string {
	u, _ := url.Parse(in.URL)
	for _, c := range in.Client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// Command runs a kinlink command (admin, roster, ledger verify...) against the
// running instance's database and settings, as an operator would beside the
// server, and returns what it printed; a failing command fails the test.
func (in *Instance) Command(t testing.TB, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := app.Run(context.Background(), args, func(k string) string { return in.Env[k] }, &out, &errOut); err != nil {
		t.Fatalf("kinlink %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// JobsSettled waits until the server has run every background job that is due: none
// is running, none waits for a retry, and every one queued for now has succeeded or
// failed. Jobs scheduled for later that have never run (a photo check an hour away)
// do not hold it up. A job queues its follow-ups (the mail a reset request sends)
// before it is marked done, so once the queue has settled every mail a request
// caused has reached the SMTP server: a test can then assert that one did not.
// It returns the jobs, newest first, so the test can check that the work it waits
// for was done at all.
func (in *Instance) JobsSettled(t testing.TB) []jobs.Job {
	t.Helper()
	db, err := database.Open(context.Background(), in.Env["KINLINK_DATABASE"])
	if err != nil {
		t.Fatalf("opening the server's database: %v", err)
	}
	defer db.Close()
	// A bound on the wait, not a timing: a VideoGram's conversion takes seconds,
	// and the tests of every package share two cores.
	deadline := time.Now().Add(90 * time.Second)
	for {
		list, err := jobs.List(context.Background(), db, "", 10000)
		if err != nil {
			t.Fatalf("listing the jobs: %v", err)
		}
		var busy []jobs.Job
		now := time.Now()
		for _, j := range list {
			later := j.State == jobs.Available && j.Attempts == 0 && j.RunAfter.After(now)
			if j.State != jobs.Succeeded && j.State != jobs.Failed && !later {
				busy = append(busy, j)
			}
		}
		if len(busy) == 0 {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still due or running after 90 s: %+v", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Succeeded counts the jobs of a kind that succeeded.
func Succeeded(list []jobs.Job, kind string) int {
	n := 0
	for _, j := range list {
		if j.Kind == kind && j.State == jobs.Succeeded {
			n++
		}
	}
	return n
}

// NeedMediaTools skips a test that needs ffmpeg (VideoGrams; video visits, whose
// recordings it merges) where it is not installed, and fails it instead when
// KINLINK_MEDIA_TOOLS=require, as in CI.
func NeedMediaTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
				t.Fatalf("KINLINK_MEDIA_TOOLS=require, but %v", err)
			}
			t.Skipf("skipping: %v (apt-get install ffmpeg)", err)
		}
	}
}
