// Command login measures how close Kinlink's login comes to the machine's raw
// password-hashing rate, and how it behaves when overloaded.
//
// In one run it measures the raw argon2id rate with Kinlink's parameters on all
// cores, then drives POST /api/v1/login of a real server (built from this
// repository, SQLite in a temporary folder) at 2x and 8x the core count in
// concurrency. It prints logins/s divided by raw hashes/s, p50/p99 latency, the share
// and speed of refusals (503 with Retry-After) under overload, and memory.
//
//	go run ./bench/login [-seconds 10]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/kinlink/kinlink/internal/identity"
)

const (
	ratioTarget = 0.85
	p99Target   = time.Second
	email       = "bench@example.org"
	password    = "a long benchmark passphrase"
)

func main() {
	seconds := flag.Int("seconds", 10, "how long each load phase runs")
	flag.Parse()
	if err := run(time.Duration(*seconds) * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "login bench:", err)
		os.Exit(1)
	}
}

func run(phase time.Duration) error {
	cores := runtime.NumCPU()
	raw := rawHashRate(cores, phase/2)
	fmt.Printf("cores: %d; argon2id m=%d KiB t=%d p=%d\n", cores, identity.DefaultHashParams.MemoryKiB, identity.DefaultHashParams.Time, identity.DefaultHashParams.Threads)
	fmt.Printf("raw argon2id: %.1f hashes/s on all cores\n", raw)

	srv, err := startServer()
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := srv.createAccount(); err != nil {
		return err
	}
	baseRSS := srv.memory("VmRSS")

	normal := srv.load(2*cores, phase)
	fmt.Printf("\nat %d concurrent (2x cores): %.1f logins/s; ratio to raw %.2f (target >= %.2f)\n", 2*cores, normal.rate(), normal.rate()/raw, ratioTarget)
	fmt.Printf("  latency of logins: p50 %v, p99 %v (target p99 < %v)\n", normal.ok.pct(50), normal.ok.pct(99), p99Target)
	fmt.Printf("  refused (503): %d of %d\n", len(normal.busy), normal.total())
	afterNormal := srv.memory("VmRSS")

	over := srv.load(8*cores, phase)
	fmt.Printf("\nat %d concurrent (8x cores): %.1f logins/s; ratio to raw %.2f\n", 8*cores, over.rate(), over.rate()/raw)
	fmt.Printf("  latency of logins: p50 %v, p99 %v\n", over.ok.pct(50), over.ok.pct(99))
	fmt.Printf("  fast refusals (503 + Retry-After): %.0f%% of requests, p50 %v, p99 %v\n",
		100*float64(len(over.busy))/float64(max(1, over.total())), over.busy.pct(50), over.busy.pct(99))
	if over.other > 0 || normal.other > 0 {
		fmt.Printf("  other answers: %d at 2x, %d at 8x\n", normal.other, over.other)
	}
	peak := srv.memory("VmHWM")
	fmt.Printf("\nmemory: idle %.1f MB, after 2x %.1f MB, after 8x %.1f MB, peak %.1f MB\n", baseRSS, afterNormal, srv.memory("VmRSS"), peak)

	var problems []string
	if normal.rate()/raw < ratioTarget {
		problems = append(problems, fmt.Sprintf("ratio %.2f below %.2f", normal.rate()/raw, ratioTarget))
	}
	if normal.ok.pct(99) > p99Target {
		problems = append(problems, fmt.Sprintf("p99 %v over %v", normal.ok.pct(99), p99Target))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// rawHashRate runs argon2id with Kinlink's parameters on every core for d.
func rawHashRate(cores int, d time.Duration) float64 {
	p := identity.DefaultHashParams
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			salt := make([]byte, 16)
			for time.Now().Before(deadline) {
				argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 32)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

type server struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	http *http.Client
}

func startServer() (*server, error) {
	dir, err := os.MkdirTemp("", "kinlink-login-bench-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "kinlink")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/kinlink").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build (run from the repository root): %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATA_DIR="+filepath.Join(dir, "data"),
		"KINLINK_DATABASE=sqlite:"+filepath.Join(dir, "data", "kinlink.db"), "KINLINK_LOG_LEVEL=error")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: "http://" + addr, dir: dir, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256},
	}}
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(20 * time.Millisecond) {
		if res, err := s.http.Get(s.url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s, nil
			}
		}
	}
	s.stop()
	return nil, fmt.Errorf("the server did not become ready")
}

func (s *server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
	os.RemoveAll(s.dir)
}

func (s *server) post(path string, body any) (*http.Response, error) {
	b, _ := json.Marshal(body)
	res, err := s.http.Post(s.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	res.Body.Close()
	return res, nil
}

var sixDigits = regexp.MustCompile(`\b(\d{6})\b`)

// createAccount signs up and verifies with the code from the outbox folder.
func (s *server) createAccount() error {
	res, err := s.post("/api/v1/signup", map[string]string{"email": email, "password": password, "full_name": "Bench",
		"security_question_id": "first_pet", "security_answer": "Rex", "locale": "en"})
	if err != nil || res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("signup: %v %v", res, err)
	}
	var code string
	for start := time.Now(); code == "" && time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(s.dir, "data", "outbox", "*.eml"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if m := sixDigits.FindSubmatch(b); m != nil {
				code = string(m[1])
			}
		}
	}
	if code == "" {
		return fmt.Errorf("no sign-up code in the outbox")
	}
	res, err = s.post("/api/v1/signup/verify", map[string]string{"email": email, "code": code, "password": password})
	if err != nil || res.StatusCode != http.StatusCreated {
		return fmt.Errorf("verify: %v %v", res, err)
	}
	return nil
}

// memory reads a /proc status field of the server in MB.
func (s *server) memory(field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

type latencies []time.Duration

func (l latencies) pct(p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Millisecond)
}

type result struct {
	ok, busy latencies
	other    int
	elapsed  time.Duration
}

func (r result) rate() float64 { return float64(len(r.ok)) / r.elapsed.Seconds() }
func (r result) total() int    { return len(r.ok) + len(r.busy) + r.other }

// load logs in from c workers for d and sorts the answers.
func (s *server) load(c int, d time.Duration) result {
	var mu sync.Mutex
	var r result
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				res, err := s.post("/api/v1/login", map[string]string{"email": email, "password": password})
				took := time.Since(t0)
				mu.Lock()
				switch {
				case err == nil && res.StatusCode == 200:
					r.ok = append(r.ok, took)
				case err == nil && res.StatusCode == 503 && res.Header.Get("Retry-After") != "":
					r.busy = append(r.busy, took)
				default:
					r.other++
				}
				mu.Unlock()
				if err == nil && res.StatusCode == 503 {
					// A well-behaved client waits a little before trying again.
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}
