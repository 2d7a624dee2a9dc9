package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/app"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/media/mediatest"
	"github.com/kinlink/kinlink/internal/messaging"
)

// startReady starts the kinlink binary with a command and waits until it is ready.
func startReady(t *testing.T, bin string, env []string, base, command string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, command)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return cmd
			}
		}
	}
	t.Fatalf("kinlink %s never became ready", command)
	return nil
}

// apiCall makes one mobile API request with a bearer token.
func apiCall(base, method, path, token string, body io.Reader, headers ...string) (int, map[string]any, error) {
	req, _ := http.NewRequest(method, base+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m, nil
}

// demoFamily signs the demo family in through the API and returns its token and its
// contact with José.
func demoFamily(t *testing.T, base string) (token, contact string) {
	t.Helper()
	login, _ := json.Marshal(map[string]string{"email": "maria@example.org", "password": "kinlink demo family 2026"})
	_, tok, err := apiCall(base, "POST", "/api/v1/login", "", bytes.NewReader(login), "Content-Type", "application/json")
	if err != nil || tok["token"] == nil {
		t.Fatalf("login: %v %v", err, tok)
	}
	token = tok["token"].(string)
	_, people, _ := apiCall(base, "GET", "/api/v1/contacts", token, nil)
	return token, people["contacts"].([]any)[0].(map[string]any)["id"].(string)
}

// A server killed with SIGKILL in the middle of a burst of paid sends keeps every
// send it said yes to, charges none twice (retrying each key after the restart
// changes nothing), and its ledger verifies.
func TestSendsSurviveACrashAndAreChargedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildKinlink(t)
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			dbtest.Open(t, e.Setting) // a fresh database for this run
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			l.Close()
			base := "http://" + addr
			env := append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATABASE="+e.Setting, "KINLINK_DATA_DIR="+t.TempDir(), "KINLINK_LOG_LEVEL=warn")
			start := func(command string) *exec.Cmd { return startReady(t, bin, env, base, command) }
			call := func(method, path, token string, body io.Reader, headers ...string) (int, map[string]any, error) {
				return apiCall(base, method, path, token, body, headers...)
			}
			send := func(token, contact, key string) (int, string, error) {
				status, m, err := call("POST", "/api/v1/contacts/"+contact+"/messages", token, strings.NewReader(url.Values{"text": {"burst " + key}}.Encode()),
					"Content-Type", "application/x-www-form-urlencoded", "Idempotency-Key", key)
				id, _ := m["id"].(string)
				return status, id, err
			}

			first := start("demo")
			token, contact := demoFamily(t, base)
			_, wallet, _ := call("GET", "/api/v1/wallet", token, nil)
			startBalance := wallet["balance_cents"].(float64)

			// Four senders keep sending; the server is killed after the 30th yes.
			var mu sync.Mutex
			acked := map[string]string{} // key -> message id
			var keys []string
			burstUntilKilled(first, 4, 30, "crash", func(key string) (ok, gone bool) {
				mu.Lock()
				keys = append(keys, key)
				mu.Unlock()
				status, id, err := send(token, contact, key)
				if err != nil {
					return false, true
				}
				if status == 201 {
					mu.Lock()
					acked[key] = id
					mu.Unlock()
				}
				return status == 201, false
			})

			second := start("serve")
			t.Cleanup(func() { second.Process.Signal(syscall.SIGTERM); second.Wait() })
			stored := map[string]bool{}
			cursor := ""
			for {
				_, page, err := call("GET", "/api/v1/contacts/"+contact+"/messages?limit=100&cursor="+cursor, token, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range page["messages"].([]any) {
					stored[m.(map[string]any)["id"].(string)] = true
				}
				next, _ := page["next_cursor"].(string)
				if next == "" {
					break
				}
				cursor = next
			}
			for key, id := range acked {
				if !stored[id] {
					t.Errorf("send %s was answered 201 (%s) but is gone after the crash", key, id)
				}
			}
			// Every key again: the acknowledged ones answer with their message, and the
			// total charge is one stamp per stored burst message.
			for _, key := range keys {
				status, id, err := send(token, contact, key)
				if err != nil || status != 201 {
					t.Fatalf("retry %s: %d %v", key, status, err)
				}
				if want, ok := acked[key]; ok && id != want {
					t.Errorf("retry %s made a new message %s (was %s)", key, id, want)
				}
			}
			_, wallet, _ = call("GET", "/api/v1/wallet", token, nil)
			if spent := startBalance - wallet["balance_cents"].(float64); spent != float64(10*len(keys)) {
				t.Errorf("%d keys cost %v cents; one stamp (10¢) each expected", len(keys), spent)
			}
			var out bytes.Buffer
			lookup := func(k string) string {
				for _, kv := range env {
					if v, ok := strings.CutPrefix(kv, k+"="); ok {
						return v
					}
				}
				return ""
			}
			if err := app.Run(context.Background(), []string{"ledger", "verify"}, lookup, &out, io.Discard); err != nil || !strings.Contains(out.String(), "ledger verified") {
				t.Errorf("ledger verify after the crash: %v %s", err, out.String())
			}
			t.Logf("killed after %d acknowledged sends; %d keys tried in all", len(acked), len(keys))
		})
	}
}

// A server killed with SIGKILL in the middle of a burst of sends with photos leaves
// no message without its photo; and once the checks those sends queued come due,
// no photo without its message. A photo is left over only when the kill lands
// between storing it and committing its message, which a run may or may not hit;
// TestPhotosLiveInAnS3Bucket (internal/api) plants one to be sure it goes.
func TestPhotoSendsSurviveACrashWithoutOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildKinlink(t)
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			db := dbtest.Open(t, e.Setting) // a fresh database for this run
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			l.Close()
			base, data := "http://"+addr, t.TempDir()
			env := append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATABASE="+e.Setting, "KINLINK_DATA_DIR="+data, "KINLINK_LOG_LEVEL=warn")
			first := startReady(t, bin, env, base, "demo")
			token, contact := demoFamily(t, base)
			photo := mediatest.JPEG(800, 600)
			send := func(key string) (int, error) {
				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				mw.WriteField("text", "a photo "+key)
				fw, _ := mw.CreateFormFile("photos", "photo.jpg")
				fw.Write(photo)
				mw.Close()
				status, _, err := apiCall(base, "POST", "/api/v1/contacts/"+contact+"/messages", token, &body,
					"Content-Type", mw.FormDataContentType(), "Idempotency-Key", key)
				return status, err
			}

			// Three senders; the server is killed after the 12th yes.
			acked := burstUntilKilled(first, 3, 12, "photo", func(key string) (ok, gone bool) {
				status, err := send(key)
				return status == 201, err != nil
			})

			second := startReady(t, bin, env, base, "serve")
			t.Cleanup(func() { second.Process.Signal(syscall.SIGTERM); second.Wait() })
			ctx := context.Background()
			blobs := func() map[string]bool {
				out := map[string]bool{}
				filepath.WalkDir(filepath.Join(data, "media"), func(path string, d fs.DirEntry, err error) error {
					if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
						out[d.Name()] = true
					}
					return nil
				})
				return out
			}
			held := func() map[string]bool {
				out := map[string]bool{}
				rows, err := db.Read().QueryContext(ctx, "SELECT id FROM message_photos")
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				for rows.Next() {
					var id string
					rows.Scan(&id)
					out[id] = true
				}
				return out
			}
			photos := held()
			if len(photos) < 12 {
				t.Fatalf("%d photos stored; 12 sends were answered 201", len(photos))
			}
			before := blobs()
			for id := range photos {
				if !before[id] {
					t.Errorf("message photo %s has no blob after the crash", id)
				}
			}
			// Every check comes due now instead of in an hour; the server runs them.
			if _, err := db.Write().ExecContext(ctx, "UPDATE jobs SET run_after = $1 WHERE kind = $2 AND state = 'available'", time.Now().UTC(), messaging.PhotoCheckJob); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				var waiting int
				db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state <> 'succeeded'", messaging.PhotoCheckJob).Scan(&waiting)
				if waiting == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d photo checks did not run", waiting)
				}
			}
			after := blobs()
			for id := range after {
				if !photos[id] {
					t.Errorf("blob %s belongs to no message after the checks", id)
				}
			}
			if len(after) != len(photos) {
				t.Errorf("%d blobs for %d message photos", len(after), len(photos))
			}
			t.Logf("killed after %d acknowledged photo sends; %d photos stored, %d blobs before the checks", acked, len(photos), len(before))
		})
	}
}

// burstUntilKilled has workers send one request after another, each with a key of its
// own (prefix-worker-i), and SIGKILLs server after the n-th success; it returns once
// every worker has seen the server go and the process has ended, with the number of
// successes (n, or a few more answered before the kill). send reports whether its
// request succeeded and whether the server was gone.
func burstUntilKilled(server *exec.Cmd, workers, n int, prefix string, send func(key string) (ok, gone bool)) int {
	var succeeded atomic.Int32
	var once sync.Once
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-killed:
					return
				default:
				}
				ok, gone := send(fmt.Sprintf("%s-%d-%d", prefix, w, i))
				if gone {
					return
				}
				if ok && succeeded.Add(1) == int32(n) {
					once.Do(func() {
						server.Process.Signal(syscall.SIGKILL)
						close(killed)
					})
				}
			}
		})
	}
	wg.Wait()
	server.Wait()
	return int(succeeded.Load())
}
