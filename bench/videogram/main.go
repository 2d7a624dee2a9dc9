// Command videogram measures VideoGrams end to end against limits measured in the
// same run (see bench/README.md):
//
//   - ffmpeg's own time to convert a 30-second 720p clip with Kinlink's settings,
//     against Kinlink's time from "upload complete" to "in review" for the same clip,
//     one at a time and four at once (aim: raw/Kinlink at least 0.8);
//   - upload throughput over loopback (tus, one PATCH) against copying the file;
//   - the server's peak memory with 8 uploads at once (aim: under 300 MB).
//
// Run it from the repository root: go run ./bench/videogram
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kinlink/kinlink/internal/media"
)

func main() {
	runs := flag.Int("runs", 3, "clips converted one at a time")
	flag.Parse()
	if err := run(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "videogram bench:", err)
		os.Exit(1)
	}
}

type server struct {
	cmd   *exec.Cmd
	url   string
	dir   string
	token string
	to    string // the demo family's contact
}

func run(runs int) error {
	dir, err := os.MkdirTemp("", "kinlink-videogram-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	clip := filepath.Join(dir, "clip.mp4")
	fmt.Println("making a 30-second 720p clip (testsrc2, 30 fps, with sound)…")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=30",
		"-f", "lavfi", "-i", "sine=duration=30", "-shortest", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", clip).CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg: %v %s", err, out)
	}
	workers := max(1, runtime.NumCPU()/2)

	// ffmpeg alone, with the arguments Kinlink gives it: one, then four with as
	// many at once as Kinlink's video workers.
	raw := func() time.Duration {
		start := time.Now()
		out := filepath.Join(dir, fmt.Sprintf("raw-%d.mp4", time.Now().UnixNano()))
		if b, err := exec.Command("ffmpeg", media.TranscodeArgs("mov", clip, out, 30*time.Second)...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "raw ffmpeg: %v %s\n", err, b)
		}
		os.Remove(out)
		return time.Since(start)
	}
	var rawOne []time.Duration
	for range runs {
		rawOne = append(rawOne, raw())
	}
	rawFour := timeBatch(4, workers, func(int) { raw() })

	s, err := startServer(dir)
	if err != nil {
		return err
	}
	defer s.stop()
	data, err := os.ReadFile(clip)
	if err != nil {
		return err
	}

	var one []time.Duration
	for i := range runs {
		id, err := s.upload(data)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := s.sendAndWait([]string{id}, fmt.Sprintf("one-%d", i)); err != nil {
			return err
		}
		one = append(one, time.Since(start))
	}
	var ids []string
	for range 4 {
		id, err := s.upload(data)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	start := time.Now()
	if err := s.sendAndWait(ids, "four"); err != nil {
		return err
	}
	four := time.Since(start)

	// Upload throughput: a 100 MB file by tus over loopback, against copying it.
	big := filepath.Join(dir, "big.bin")
	f, _ := os.Create(big)
	io.CopyN(f, zeros{}, 95<<20)
	f.Close()
	bigData, _ := os.ReadFile(big)
	copyStart := time.Now()
	src, _ := os.Open(big)
	dst, _ := os.Create(big + ".copy")
	io.Copy(dst, src)
	dst.Sync()
	src.Close()
	dst.Close()
	copyTime := time.Since(copyStart)
	upStart := time.Now()
	if _, err := s.upload(bigData); err != nil {
		return err
	}
	upTime := time.Since(upStart)

	// Eight uploads of 50 MB at once (each a different account's would be the
	// same work; one account may have three unfinished, so they go in turns of
	// three and the peak is read at the end).
	var wg sync.WaitGroup
	part := bigData[:50<<20]
	sem := make(chan struct{}, media.MaxOpenUploads)
	for range 8 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := s.upload(part); err != nil {
				fmt.Fprintln(os.Stderr, "upload:", err)
			}
		})
	}
	wg.Wait()
	peak := s.memory("VmHWM")

	med := func(xs []time.Duration) time.Duration {
		ys := slices.Clone(xs)
		slices.Sort(ys)
		return ys[len(ys)/2]
	}
	fmt.Printf("runs: %d one at a time; %d video workers; %d cores\n", runs, workers, runtime.NumCPU())
	fmt.Printf("one clip:   ffmpeg alone median %v; upload complete to in review median %v; ratio %.2f (aim ≥ 0.8)\n",
		med(rawOne).Round(time.Millisecond), med(one).Round(time.Millisecond), med(rawOne).Seconds()/med(one).Seconds())
	fmt.Printf("four clips: ffmpeg alone %v; all four in review %v; ratio %.2f (aim ≥ 0.8)\n",
		rawFour.Round(time.Millisecond), four.Round(time.Millisecond), rawFour.Seconds()/four.Seconds())
	fmt.Printf("upload:     95 MB by tus over loopback %v (%.0f MB/s); file copy %v (%.0f MB/s); ratio %.2f\n",
		upTime.Round(time.Millisecond), 95/upTime.Seconds(), copyTime.Round(time.Millisecond), 95/copyTime.Seconds(), copyTime.Seconds()/upTime.Seconds())
	fmt.Printf("memory:     server peak RSS %.0f MB after 8 uploads of 50 MB and the conversions (limit 300 MB) ratio %.2f\n", peak, peak/300)
	return nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// timeBatch runs n jobs, at most k at once, and returns the time for all.
func timeBatch(n, k int, job func(int)) time.Duration {
	start := time.Now()
	sem := make(chan struct{}, k)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			job(i)
		})
	}
	wg.Wait()
	return time.Since(start)
}

func startServer(dir string) (*server, error) {
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
	s := &server{url: "http://" + addr, dir: dir}
	s.cmd = exec.Command(bin, "demo")
	s.cmd.Env = append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATA_DIR="+filepath.Join(dir, "data"),
		"KINLINK_DATABASE=sqlite:"+filepath.Join(dir, "data", "kinlink.db"), "KINLINK_LOG_LEVEL=error", "KINLINK_BASE_URL="+s.url)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(s.url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Since(start) > 60*time.Second {
			s.stop()
			return nil, fmt.Errorf("the server did not become ready")
		}
	}
	var login map[string]any
	if err := s.call("POST", "/api/v1/login", map[string]string{"email": "maria@example.org", "password": "kinlink demo family 2026"}, &login); err != nil {
		return nil, err
	}
	s.token, _ = login["token"].(string)
	var people map[string]any
	if err := s.call("GET", "/api/v1/contacts", nil, &people); err != nil {
		return nil, err
	}
	s.to = people["contacts"].([]any)[0].(map[string]any)["id"].(string)
	// Enough money for every clip of the run.
	var top map[string]any
	return s, s.call("POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 5000, "payment_token": "tok_visa"}, &top, "Idempotency-Key", "bench")
}

func (s *server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

func (s *server) call(method, path string, body any, out any, headers ...string) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, r)
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// upload sends data by tus in one PATCH and returns the upload's id.
func (s *server) upload(data []byte) (string, error) {
	req, _ := http.NewRequest("POST", s.url+"/api/v1/uploads", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create upload: %d", res.StatusCode)
	}
	req, _ = http.NewRequest("PATCH", loc, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		return "", fmt.Errorf("upload: %d", res.StatusCode)
	}
	return loc[strings.LastIndex(loc, "/")+1:], nil
}

// sendAndWait sends a VideoGram of each upload and waits until all are in review.
func (s *server) sendAndWait(uploads []string, key string) error {
	var ids []string
	for i, u := range uploads {
		var m map[string]any
		if err := s.call("POST", "/api/v1/contacts/"+s.to+"/videograms", map[string]string{"upload_id": u}, &m, "Idempotency-Key", fmt.Sprintf("%s-%d", key, i)); err != nil {
			return err
		}
		ids = append(ids, m["id"].(string))
	}
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var conv map[string]any
		if err := s.call("GET", "/api/v1/contacts/"+s.to+"/messages?limit=100", nil, &conv); err != nil {
			return err
		}
		done := 0
		for _, m := range conv["messages"].([]any) {
			m := m.(map[string]any)
			if slices.Contains(ids, m["id"].(string)) {
				switch m["state"] {
				case "in_review", "delivered":
					done++
				case "failed":
					return fmt.Errorf("a clip failed: %v", m)
				}
			}
		}
		if done == len(ids) {
			return nil
		}
	}
	return fmt.Errorf("clips not in review after 10 minutes")
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
