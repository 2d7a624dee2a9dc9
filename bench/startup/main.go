// Command startup measures how fast a fresh Kinlink becomes ready and how much memory
// it holds when idle: it builds the real binary, starts "kinlink serve" on a new
// SQLite database several times, and reports the medians against the targets
// (ready in under 1 s, idle RSS under 60 MB) and against the cost of starting the
// same binary to print its version, measured in the same run.
//
//	go run ./bench/startup [-runs 7]
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	readyLimit = time.Second
	rssLimitMB = 60.0
)

func main() {
	runs := flag.Int("runs", 7, "how many cold starts to measure")
	flag.Parse()
	if err := measure(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func measure(runs int) error {
	work, err := os.MkdirTemp("", "kinlink-startup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "kinlink")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/kinlink").CombinedOutput(); err != nil {
		return fmt.Errorf("go build (run from the repository root): %v\n%s", err, out)
	}

	var ready, baseline []time.Duration
	var rss []float64
	for i := range runs {
		start := time.Now()
		if err := exec.Command(bin, "version").Run(); err != nil {
			return err
		}
		baseline = append(baseline, time.Since(start))

		r, mb, err := coldStart(bin, filepath.Join(work, fmt.Sprintf("run%d", i)))
		if err != nil {
			return err
		}
		ready = append(ready, r)
		rss = append(rss, mb)
	}
	mr, mb, base := medianDuration(ready), medianFloat(rss), medianDuration(baseline)
	fmt.Printf("runs: %d (fresh SQLite database each)\n", runs)
	fmt.Printf("start to /readyz 200: median %v (limit %v) ratio %.2f\n", mr.Round(time.Millisecond), readyLimit, float64(mr)/float64(readyLimit))
	fmt.Printf("idle RSS:             median %.1f MB (limit %.0f MB) ratio %.2f\n", mb, rssLimitMB, mb/rssLimitMB)
	fmt.Printf("process start only (kinlink version): median %v; ready/baseline ratio %.1f\n", base.Round(time.Millisecond), float64(mr)/float64(base))
	if mr > readyLimit || mb > rssLimitMB {
		return fmt.Errorf("over the limit")
	}
	return nil
}

// coldStart starts kinlink on a new data folder and returns the time until /readyz
// answers 200 and the resident memory a second later, when idle.
func coldStart(bin, dir string) (time.Duration, float64, error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATA_DIR="+dir,
		"KINLINK_DATABASE=sqlite:"+filepath.Join(dir, "kinlink.db"), "KINLINK_LOG_LEVEL=error")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	for {
		if time.Since(start) > 30*time.Second {
			return 0, 0, fmt.Errorf("not ready after 30 s")
		}
		res, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	time.Sleep(time.Second)
	mb, err := rssMB(cmd.Process.Pid)
	return elapsed, mb, err
}

func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func medianDuration(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func medianFloat(f []float64) float64 {
	sort.Float64s(f)
	return f[len(f)/2]
}
