package e2e

import (
	"bytes"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kinlink/kinlink/internal/apptest"
)

// cuttingProxy forwards a browser's connections to the server and cuts the first
// few that carry a resumable upload's piece after some of its bytes: the way to
// the server drops in the middle of a clip. The browser is answered as a proxy
// that lost its server answers (502): a bare reset would be retried by the
// browser itself on a reused connection, unseen by the page.
type cuttingProxy struct {
	ln      net.Listener
	target  string
	after   int // bytes of a piece that get through before the cut
	mu      sync.Mutex
	cutsDue int
	cuts    int
}

func newCuttingProxy(t *testing.T, target string, cuts, after int) *cuttingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, target: target, after: after, cutsDue: cuts}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cuttingProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cuttingProxy) cutsMade() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *cuttingProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	defer client.Close()
	defer server.Close()
	go func() {
		io.Copy(client, server)
		client.Close()
	}()
	// What the browser sends is watched for a piece of an upload; once one starts
	// on a connection that is due a cut, it is cut after p.after more bytes.
	buf := make([]byte, 32<<10)
	seen, counting := []byte{}, -1
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if counting < 0 {
				seen = append(seen[max(0, len(seen)-64):], chunk...)
				if i := bytes.Index(seen, []byte("PATCH /uploads/")); i >= 0 && p.takeCut() {
					counting = 0
				}
			} else {
				counting += n
			}
			if counting >= p.after {
				client.Write([]byte("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
				return // both closed: the server keeps what arrived
			}
			if _, werr := server.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *cuttingProxy) takeCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cuts >= p.cutsDue {
		return false
	}
	p.cuts++
	return true
}

// Issue 14: a family's upload survives a dropped connection and a closed tab. María
// chooses a clip on a weak connection: it drops in the middle, and the page goes on
// by itself from where the server got to; it drops again, and she closes the tab
// while the page waits to retry. She opens the conversation again and chooses the
// same clip: it goes on from where it stopped, not from the start, and is sent and
// paid for once.
func TestVideoGramUploadResumes(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missing(t, "no ffmpeg")
	}
	clip := filepath.Join(t.TempDir(), "sobrina.mp4")
	// About 3 MB: noise does not compress.
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "nullsrc=size=640x360:rate=25:duration=6,geq=random(1)*255:128:128",
		"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("making a clip: %v\n%s", err, out)
	}
	b := newBrowserFor(t, 3*time.Minute)
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), nil)
	in.WaitStdout(t, "Stop with Ctrl+C")
	proxy := newCuttingProxy(t, strings.TrimPrefix(in.URL, "http://"), 2, 900<<10)
	site := proxy.URL()

	b.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(site+"/login"), at("#login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
		chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitNotPresent(chromedp.CSS("#login-submit")),
		chromedp.Navigate(site+"/lang?to=en&next=/people"), at("#mine-title"), chromedp.Click(chromedp.CSS(`a[href$="/messages#latest"]`)), at("#videogram-send"))
	conversation := eval[string](t, b, `location.pathname`)
	// The page's pieces are watched: where each starts (kept in the tab's session
	// storage, so that the page the form leads to can still say).
	watchPieces := `(() => { sessionStorage.setItem("offsets", "[]"); const set = XMLHttpRequest.prototype.setRequestHeader;
		XMLHttpRequest.prototype.setRequestHeader = function (k, v) {
			if (k === "Upload-Offset") sessionStorage.setItem("offsets", JSON.stringify([...JSON.parse(sessionStorage.getItem("offsets")), Number(v)]));
			return set.call(this, k, v); }; return true; })()`
	offsets := `JSON.parse(sessionStorage.getItem("offsets") || "[]")`
	eval[bool](t, b, watchPieces)
	b.do(t, chromedp.SetUploadFiles(chromedp.CSS("#video"), []string{clip}), chromedp.Click(chromedp.CSS("#videogram-send")))

	// The first drop: the page says so and goes on by itself from the server's offset.
	b.waitFor(t, "the first drop is said", `document.querySelector("#videogram-status").textContent.includes("Trying again where it stopped")`, 30*time.Second)
	b.waitFor(t, "it went on where it stopped", offsets+`.length >= 2 && `+offsets+`[1] > 0`, 30*time.Second)
	// The second drop: she closes the tab while the page waits to retry.
	// (The page waits four seconds before its third try: time enough.)
	for deadline := time.Now().Add(30 * time.Second); proxy.cutsMade() < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second drop never came")
		}
	}
	before := eval[[]float64](t, b, offsets)
	b.do(t, chromedp.Navigate("about:blank"), chromedp.Navigate(site+conversation), at("#videogram-send"))
	eval[bool](t, b, watchPieces)
	b.do(t, chromedp.SetUploadFiles(chromedp.CSS("#video"), []string{clip}), chromedp.Click(chromedp.CSS("#videogram-send")))
	b.waitFor(t, "sent", `location.search.includes("sent=1")`, 60*time.Second)
	after := eval[[]float64](t, b, offsets)
	if len(after) == 0 || after[0] <= before[len(before)-1] {
		t.Errorf("chosen again, the clip did not go on from where it stopped: before the tab closed %v, after %v", before, after)
	}

	// Sent once, paid once.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		b.do(t, chromedp.Navigate(site+conversation), at("#thread"))
		if strings.Contains(eval[string](t, b, `document.querySelector("#thread > li:last-child").innerText`), "Waiting for review") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the clip never reached review:\n%s", eval[string](t, b, `document.querySelector("#thread").innerText`))
		}
	}
	if n := eval[float64](t, b, `[...document.querySelectorAll("#thread > li")].filter(li => li.querySelector("video")).length`); n != 1 {
		t.Errorf("%v VideoGrams in the conversation, want 1", n)
	}
	b.do(t, chromedp.Navigate(site+"/wallet"), at("#balance"))
	if balance := eval[string](t, b, `document.querySelector("#balance").innerText`); !strings.Contains(balance, "$49.20") {
		t.Errorf("the wallet after one VideoGram of 3 stamps: %q", balance)
	}
}
