package app_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
)

// Issue 14: a server killed with SIGKILL while it converts a VideoGram leaves the
// job to the next server, which finishes it: the clip is delivered to review once,
// charged once, and the ledger verifies.
func TestVideoGramConversionSurvivesACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
			t.Fatal("KINLINK_MEDIA_TOOLS=require, but there is no ffmpeg")
		}
		t.Skip("skipping: no ffmpeg")
	}
	clipFile := filepath.Join(t.TempDir(), "clip.mp4")
	// Long enough in pixels to be caught converting.
	if b, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=20",
		"-f", "lavfi", "-i", "sine=duration=20", "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", clipFile).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, b)
	}
	clip, _ := os.ReadFile(clipFile)
	bin := buildKinlink(t)
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			dbtest.Open(t, e.Setting)
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			l.Close()
			base := "http://" + addr
			env := append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATABASE="+e.Setting,
				"KINLINK_DATA_DIR="+t.TempDir(), "KINLINK_LOG_LEVEL=warn", "KINLINK_JOB_TIMEOUT=3s", "KINLINK_VIDEO_WORKERS=1",
				"KINLINK_BASE_URL="+base)
			first := startReady(t, bin, env, base, "demo")
			token, contact := demoFamily(t, base)
			_, wallet, _ := apiCall(base, "GET", "/api/v1/wallet", token, nil)
			before := wallet["balance_cents"].(float64)

			req, _ := http.NewRequest("POST", base+"/api/v1/uploads", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Length", strconv.Itoa(len(clip)))
			res, err := http.DefaultClient.Do(req)
			if err != nil || res.StatusCode != http.StatusCreated {
				t.Fatalf("create upload: %v %v", err, res)
			}
			loc := res.Header.Get("Location")
			status, _, err := apiCall(base, "PATCH", loc[strings.Index(loc, "/api/v1/uploads/"):], token, bytes.NewReader(clip),
				"Tus-Resumable", "1.0.0", "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
			if err != nil || status != http.StatusNoContent {
				t.Fatalf("upload: %d %v", status, err)
			}
			status, sent, err := apiCall(base, "POST", "/api/v1/contacts/"+contact+"/videograms", token,
				strings.NewReader(`{"upload_id":"`+loc[strings.LastIndex(loc, "/")+1:]+`"}`), "Content-Type", "application/json", "Idempotency-Key", "crash-1")
			if err != nil || status != http.StatusAccepted {
				t.Fatalf("send: %d %v %v", status, err, sent)
			}

			// Kill the server once its ffmpeg is converting.
			converting := false
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !converting; time.Sleep(20 * time.Millisecond) {
				// Any thread of the server may have started it.
				tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(first.Process.Pid) + "/task/*/children")
				for _, f := range tasks {
					children, _ := os.ReadFile(f)
					for _, pid := range strings.Fields(string(children)) {
						if cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline"); bytes.Contains(cmdline, []byte("libx264")) {
							converting = true
						}
					}
				}
			}
			if !converting {
				t.Fatal("the conversion never started")
			}
			first.Process.Signal(syscall.SIGKILL)
			first.Wait()

			second := startReady(t, bin, env, base, "serve")
			t.Cleanup(func() { second.Process.Signal(syscall.SIGTERM); second.Wait() })
			var found map[string]any
			for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				_, conv, _ := apiCall(base, "GET", "/api/v1/contacts/"+contact+"/messages?limit=100", token, nil)
				n := 0
				for _, m := range conv["messages"].([]any) {
					if m := m.(map[string]any); m["kind"] == "videogram" {
						found = m
						n++
					}
				}
				if n != 1 {
					t.Fatalf("%d VideoGrams after the crash", n)
				}
				if found["state"] != "processing" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still processing after the restart: %v", found)
				}
			}
			if found["state"] != "in_review" || found["id"] != sent["id"] {
				t.Fatalf("after the restart: %v", found)
			}
			_, wallet, _ = apiCall(base, "GET", "/api/v1/wallet", token, nil)
			if got := wallet["balance_cents"].(float64); got != before-found["cost_cents"].(float64) {
				t.Errorf("balance %v, from %v and one VideoGram of %v", got, before, found["cost_cents"])
			}
			verify := exec.Command(bin, "ledger", "verify")
			verify.Env = env
			if out, err := verify.CombinedOutput(); err != nil {
				t.Errorf("ledger verify: %v %s", err, out)
			}
		})
	}
}
