package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database"
)

// countPeers makes every RTCPeerConnection and WebSocket a page creates
// reachable from the test (window.__peers, window.__sockets), to read its
// getStats or drop it: the pages themselves expose nothing.
const countPeers = `(() => {
	const Real = window.RTCPeerConnection, RealSocket = window.WebSocket;
	if (!Real) return;
	window.__peers = [];
	window.__sockets = [];
	window.RTCPeerConnection = class extends Real {
		constructor(...args) { super(...args); window.__peers.push(this); }
	};
	window.WebSocket = class extends RealSocket {
		constructor(...args) { super(...args); window.__sockets.push(this); }
	};
})();`

// framesDecoded is the video frames the page's newest connection decoded so far,
// over every video it receives.
const framesDecoded = `(async () => {
	const pc = (window.__peers || []).at(-1);
	if (!pc) return 0;
	let n = 0;
	(await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") n += r.framesDecoded || 0; });
	return n;
})()`

// context is another browser context of b's Chromium: a second person, with
// cookies of their own, in a tab of their own.
func (b *Browser) context(t *testing.T) *Browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("a new browser context: %v", err)
	}
	return &Browser{ctx: ctx, axe: b.axe}
}

// Issue 15, the live visit, on the demo: María books a visit on a phone 360 px
// wide, the visitation officer approves it, and at its time María joins from her
// browser and José from the kiosk, in a second browser context (Spanish), each with
// a fake camera and microphone. Both see the other's video play (frames decoded
// grow on both sides). The officer, in a third context, watches silently and ends
// the visit with a reason; both rooms say it ended, by staff, with the reason; and
// María's visit is charged one minute at the demo's rate, the minute they were
// connected. The room pages fit 360 px and pass axe in English and Spanish.
func TestLiveVisitJourney(t *testing.T) {
	started := time.Now()
	b := newBrowserWith(t, 5*time.Minute, chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true), chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	in := apptest.Start(t, "demo", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), map[string]string{"KINLINK_VIDEO_VISITS": "on"})
	guide := in.WaitStdout(t, "Stop with Ctrl+C")
	kioskCode := regexp.MustCompile(`with code (\S+)`).FindStringSubmatch(guide)[1]
	kiosk, officer := b.context(t), b.context(t)
	for _, x := range []*Browser{b, kiosk, officer} {
		if _, err := chromedp.Call(x.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: countPeers}); err != nil {
			t.Fatal(err)
		}
	}
	text := func(x *Browser, sel string) string {
		t.Helper()
		return eval[string](t, x, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
	}
	fits := func(x *Browser, what string) { t.Helper(); x.fits(t, what) }

	// playing waits until the video a page receives decodes frames, and keeps
	// decoding.
	playing := func(x *Browser, who string) {
		t.Helper()
		first := 0.0
		for deadline := time.Now().Add(30 * time.Second); first == 0; time.Sleep(250 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no video frame decoded", who)
			}
			first = eval[float64](t, x, framesDecoded, chromedp.EvalAwaitPromise)
		}
		time.Sleep(2 * time.Second)
		if then := eval[float64](t, x, framesDecoded, chromedp.EvalAwaitPromise); then <= first {
			t.Errorf("%s: frames decoded do not grow: %v then %v", who, first, then)
		}
	}

	// María books the first free time on her phone.
	b.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/login"), at("#login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "maria@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "kinlink demo family 2026"),
		chromedp.Click(chromedp.CSS("#login-submit")), at("#my-people"),
		chromedp.Click(chromedp.CSS("#my-people a.book-visit")), at("#visit-times button.slot"),
		chromedp.Click(chromedp.CSS("#visit-times button.slot")), at("#book"),
		chromedp.Click(chromedp.CSS("#book")), at("#visit-booked"))
	visitPage := eval[string](t, b, `location.pathname`)
	visitID := strings.TrimPrefix(visitPage, "/visits/")

	// The visitation officer signs in and approves it.
	officer.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/facility"), at("#portal-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#email"), "visitation@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "demo staff 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	code, _ := totp.GenerateCode("KINLINKDEMOVISITATION222", time.Now())
	officer.do(t, chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#visits-link"),
		chromedp.Navigate(in.URL+"/facility/visits/requests"), at("#approve-"+visitID),
		chromedp.Click(chromedp.CSS("#approve-"+visitID)), at("#no-requests"))

	// Its time comes: the demo books from two hours ahead, so the booked visit is
	// moved in the database to have started a minute ago (its 20 minutes from
	// then). This stands for waiting until the time María booked.
	db, err := database.Open(context.Background(), in.Env["KINLINK_DATABASE"])
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	_, err = db.Write().ExecContext(context.Background(), "UPDATE visits SET starts_at = $2, ends_at = $3 WHERE id = $1",
		visitID, now.Add(-time.Minute), now.Add(19*time.Minute))
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	// María: the visit page links the room; the room fits and passes axe in
	// English and Spanish before she joins.
	room := "/visits/" + visitID + "/room"
	b.do(t, chromedp.Navigate(in.URL+visitPage), at("#join-visit"), chromedp.Click(chromedp.CSS("#join-visit")), at("#room-join"))
	if got := eval[string](t, b, `location.pathname`); got != room {
		t.Fatalf("Join leads to %s", got)
	}
	for _, c := range []struct{ lang, join, waiting string }{
		{"es", "Entrar a la visita", "Pulse «Entrar a la visita»"},
		{"en", "Join the visit", "Press “Join the visit”"},
	} {
		b.do(t, chromedp.Navigate(in.URL+"/lang?to="+c.lang+"&next="+room), at(`html[lang="`+c.lang+`"] #room-join`))
		b.waitFor(t, "the room is ready", `!document.querySelector("#room-join").disabled`, 5*time.Second)
		if got := text(b, "#visit-room"); !strings.Contains(got, c.join) || !strings.Contains(got, c.waiting) {
			t.Errorf("the room in %s:\n%s", c.lang, got)
		}
		fits(b, "visit room "+c.lang)
	}
	// Camera and microphone refused: the room says so plainly and lets her try again.
	eval[bool](t, b, `(navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("denied", "NotAllowedError"))) && true`)
	b.do(t, chromedp.Click(chromedp.CSS("#room-join")))
	b.waitFor(t, "the refusal is said", `!document.querySelector("#room-camera-refused").hidden && !document.querySelector("#room-join").disabled`, 5*time.Second)
	if got := text(b, "#room-camera-refused"); !strings.Contains(got, "Allow both for this site") {
		t.Errorf("the camera refused: %q", got)
	}
	fits(b, "visit room camera refused en")
	b.do(t, chromedp.Reload(), at("#room-join"))
	b.waitFor(t, "the room is ready again", `!document.querySelector("#room-join").disabled`, 5*time.Second)
	b.do(t, chromedp.Click(chromedp.CSS("#room-join")))
	b.waitFor(t, "María waits for José", `document.querySelector("#room-state-text").innerText === "Waiting for José García…"`, 20*time.Second)

	// José at the kiosk, in Spanish: Join on his home, then the room.
	kiosk.do(t, chromedp.EmulateViewport(360, 740, chromedp.EmulatePortrait, chromedp.EmulateTouch),
		chromedp.Navigate(in.URL+"/kiosk"), at("#kiosk-enrol-submit"),
		chromedp.SendKeys(chromedp.CSS("#code"), kioskCode), chromedp.Click(chromedp.CSS("#kiosk-enrol-submit")), at("#kiosk-login-submit"),
		chromedp.SendKeys(chromedp.CSS("#resident_id"), "D1001"), chromedp.SendKeys(chromedp.CSS("#pin"), "4826"),
		chromedp.Click(chromedp.CSS("#kiosk-login-submit")), at("#join-"+visitID),
		chromedp.Navigate(in.URL+"/kiosk/lang?to=es&next=/kiosk"), at(`html[lang="es"] #join-`+visitID))
	fits(kiosk, "kiosk home with a visit to join es")
	kiosk.tap(t, "#join-"+visitID)
	kiosk.do(t, at("#room-join"))
	kiosk.waitFor(t, "the kiosk's room is ready", `!document.querySelector("#room-join").disabled`, 5*time.Second)
	fits(kiosk, "kiosk room es")
	if j := kiosk.box(t, "#room-join"); j.Bottom-j.Top < 64 {
		t.Errorf("the kiosk's Join is small: %+v", j)
	}
	kiosk.tap(t, "#room-join")

	// Both connected, both videos play.
	kiosk.waitFor(t, "José connected", `document.querySelector("#room-state-text").innerText === "Conectados"`, 30*time.Second)
	b.waitFor(t, "María connected", `document.querySelector("#room-state-text").innerText === "Connected"`, 30*time.Second)
	connected := time.Now()
	playing(b, "María")
	playing(kiosk, "José")
	fits(b, "visit room connected en")
	fits(kiosk, "kiosk room connected es")

	// A network change on María's side: her page asks for an ICE restart over
	// its socket, and answers the server's new offer (new ICE credentials) on the
	// same connection.
	ufrag := `((window.__peers.at(-1).remoteDescription || {sdp: ""}).sdp.match(/a=ice-ufrag:(\S+)/) || [])[1]`
	before := eval[string](t, b, ufrag)
	peers := eval[int](t, b, `window.__peers.length`)
	eval[bool](t, b, `dispatchEvent(new Event("online")) || true`)
	b.waitFor(t, "an ICE restart", ufrag+` !== `+fmt.Sprintf("%q", before)+` && window.__peers.length === `+fmt.Sprint(peers)+
		` && window.__peers.at(-1).connectionState === "connected"`, 15*time.Second)
	// Her socket drops: the page joins again with a new one and a new connection,
	// and the videos play again on both sides.
	eval[bool](t, b, `window.__sockets.at(-1).close() || true`)
	b.waitFor(t, "María joins again", `window.__peers.length > `+fmt.Sprint(peers)+` && window.__peers.at(-1).connectionState === "connected"`, 20*time.Second)
	b.waitFor(t, "María connected again", `document.querySelector("#room-state-text").innerText === "Connected"`, 20*time.Second)
	playing(b, "María, joined again")
	playing(kiosk, "José, after María joined again")

	// The officer watches from the live visits page: both sides play, silently.
	officer.do(t, chromedp.Navigate(in.URL+"/facility/visits/live"), at("#watch-"+visitID))
	fits(officer, "live visits")
	officer.do(t, chromedp.Click(chromedp.CSS("#watch-"+visitID)), at("#end-reason"))
	officer.waitFor(t, "the officer sees them connected", `document.querySelector("#room-state-text").innerText === "Connected"`, 30*time.Second)
	playing(officer, "the officer")
	if muted := eval[bool](t, officer, `[...document.querySelectorAll("video")].every((v) => v.muted)`); !muted {
		t.Error("the officer's videos play with sound")
	}
	officer.waitFor(t, "both sides' videos play for the officer",
		`[...document.querySelectorAll("#family-video, #resident-video")].every((v) => v.videoWidth > 0)`, 15*time.Second)
	fits(officer, "watching a visit")

	// And ends it with a reason, which both sides read.
	reason := "Count time: the unit is locked down"
	officer.do(t, chromedp.SendKeys(chromedp.CSS("#end-reason"), reason), chromedp.Click(chromedp.CSS("#end-visit-submit")), at("#watch-ended"))
	t.Logf("connected for %v before the officer ended it", time.Since(connected).Round(time.Second))
	b.waitFor(t, "María's room ended", `document.querySelector("#room-state-text").innerText === "The visit ended"`, 15*time.Second)
	kiosk.waitFor(t, "José's room ended", `document.querySelector("#room-state-text").innerText === "La visita terminó"`, 15*time.Second)
	if got := text(b, "#room-why"); !strings.Contains(got, "Facility staff ended the visit") || !strings.Contains(got, reason) {
		t.Errorf("María reads: %q", got)
	}
	if got := text(kiosk, "#room-why"); !strings.Contains(got, "El personal del centro terminó la visita") || !strings.Contains(got, reason) {
		t.Errorf("José reads: %q", got)
	}
	fits(b, "visit room ended en")
	fits(kiosk, "kiosk room ended es")

	// María's visit: charged one minute at 12¢, the rest of the $2.40 held back.
	b.do(t, chromedp.Navigate(in.URL+visitPage), at("#visit-money"))
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(text(b, "#visit-money"), "charged"); time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the visit shows no charge: %q", text(b, "#visit-money"))
		}
		b.do(t, chromedp.Reload(), at("#visit-money"))
	}
	if got := text(b, "#visit-money"); !strings.Contains(got, "$0.12 charged for the connected minutes; $2.28 came back") {
		t.Errorf("the visit's money: %q", got)
	}
	if got := text(b, "#visit-state"); got != "Completed" {
		t.Errorf("the visit's state: %q", got)
	}
	fits(b, "visit charged")

	// The officer plays the visit's recording: both sides merged into one file,
	// which the browser plays.
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		officer.do(t, chromedp.Navigate(in.URL+"/facility/visits/"+visitID+"/recording"), at("h1"))
		if eval[bool](t, officer, `document.querySelector("video.recording") !== null`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recording to play: %q", text(officer, "main"))
		}
	}
	eval[bool](t, officer, `(document.querySelector("video.recording").play(), true)`)
	officer.waitFor(t, "the recording plays", `(() => { const v = document.querySelector("video.recording"); return v.duration > 5 && v.videoWidth > 0 && v.currentTime > 0; })()`, 30*time.Second)
	fits(officer, "visit recording")
	t.Logf("the journey took %v", time.Since(started).Round(time.Second))
}
