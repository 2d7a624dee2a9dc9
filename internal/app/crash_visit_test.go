package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// How long the server stays down after the kill: clearly longer than the margin
// the connected time is allowed over what the test measured, so that down time
// counted as connected would show.
const (
	visitDownTime = 15 * time.Second
	visitMargin   = 10 * time.Second
)

// Issue 15: a server killed with SIGKILL during a live visit loses the room, not
// the visit. On the restarted server (same data, same media port) the family
// (over the API's WebSocket) and the resident (at the kiosk station) rejoin the
// same visit, their media flows again and the visit stays live; when the family
// hangs up it is completed and charged for the minutes both sides were connected:
// what was kept before the kill plus what connected after the restart, never the
// time the server was down. The wallet shows the hold less that charge, and the
// ledger verifies.
func TestVisitRejoinedAfterACrashChargesOnlyConnectedTime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary, and waits out a visit's progress")
	}
	for _, tool := range []string{"ffmpeg", "ffprobe"} { // visits are recorded
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("KINLINK_MEDIA_TOOLS") == "require" {
				t.Fatalf("KINLINK_MEDIA_TOOLS=require, but there is no %s", tool)
			}
			t.Skipf("skipping: no %s", tool)
		}
	}
	bin := buildKinlink(t)
	engines := dbtest.Engines(t)
	// Each engine's server has ports of its own, all taken at once so that no two
	// are the same, and let go for the servers. The media port is fixed, so that
	// the restarted server listens where the first did.
	var held []io.Closer
	ports := make([][2]string, len(engines))
	for i := range engines {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l, u)
		ports[i] = [2]string{l.Addr().String(), u.LocalAddr().String()}
	}
	for _, c := range held {
		c.Close()
	}
	for i, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel() // each engine has its own server, ports and data; most of the time is waiting
			crashDuringVisit(t, bin, e.Setting, ports[i][0], ports[i][1])
		})
	}
}

func crashDuringVisit(t *testing.T, bin, setting, addr, mediaUDP string) {
	ctx := context.Background()
	db := dbtest.Open(t, setting)
	base := "http://" + addr
	dir := t.TempDir()
	env := append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATABASE="+setting,
		"KINLINK_DATA_DIR="+filepath.Join(dir, "data"), "KINLINK_LOG_LEVEL=warn", "KINLINK_BASE_URL="+base,
		"KINLINK_VIDEO_VISITS=on", "KINLINK_MEDIA_UDP="+mediaUDP)
	logs := map[string]string{}
	// start runs kinlink until it is ready, and returns how to stop it with a
	// signal.
	start := func(command string) (stop func(os.Signal)) {
		t.Helper()
		out, errs := filepath.Join(dir, command+".out"), filepath.Join(dir, command+".err")
		logs[command] = errs
		cmd := exec.Command(bin, command)
		cmd.Env = env
		cmd.Stdout, _ = os.Create(out)
		cmd.Stderr, _ = os.Create(errs)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var once sync.Once
		stop = func(sig os.Signal) {
			once.Do(func() {
				cmd.Process.Signal(sig)
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					t.Errorf("kinlink %s did not stop on %v", command, sig)
				}
			})
		}
		t.Cleanup(func() { stop(syscall.SIGKILL) }) // a test that failed before stopping it
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			select {
			case err := <-exited: // a port taken meanwhile, a bad setting: not another server's readiness
				once.Do(func() {})
				b, _ := os.ReadFile(errs)
				t.Fatalf("kinlink %s exited: %v\n%s", command, err, b)
			default:
			}
			if res, err := http.Get(base + "/readyz"); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					return stop
				}
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(errs)
				t.Fatalf("kinlink %s never became ready:\n%s", command, b)
			}
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for command, f := range logs {
				if b, _ := os.ReadFile(f); len(b) > 0 {
					t.Logf("kinlink %s said:\n%s", command, b)
				}
			}
		}
	})

	// The demo: María with $50 and an approved contact with José (D1001, PIN
	// 4826), and North Unit's visit station, whose enrolment code it prints.
	killFirst := start("demo")
	var code string
	for deadline := time.Now().Add(10 * time.Second); code == ""; time.Sleep(50 * time.Millisecond) {
		out, _ := os.ReadFile(filepath.Join(dir, "demo.out"))
		if m := regexp.MustCompile(`with code ([A-Z0-9-]+)`).FindSubmatch(out); m != nil {
			code = string(m[1])
		} else if time.Now().After(deadline) {
			t.Fatalf("the demo printed no kiosk code:\n%s", out)
		}
	}
	token, contact := demoFamily(t, base)
	station := newStation(t, base, code, "D1001", "4826")

	// María books the first slot offered.
	_, wallet, _ := apiCall(base, "GET", "/api/v1/wallet", token, nil)
	funded := wallet["balance_cents"].(float64)
	_, offer, _ := apiCall(base, "GET", "/api/v1/contacts/"+contact+"/visit-slots?days=3", token, nil)
	slots, _ := offer["slots"].([]any)
	if len(slots) == 0 {
		t.Fatalf("no slot offered: %v", offer)
	}
	slot := slots[0].(map[string]any)
	status, booked, err := apiCall(base, "POST", "/api/v1/visits", token,
		strings.NewReader(fmt.Sprintf(`{"contact_id":%q,"start":%q,"minutes":%v}`, contact, slot["start"], slot["minutes"])),
		"Content-Type", "application/json", "Idempotency-Key", "crash-visit")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("book: %d %v %v", status, err, booked)
	}
	id := booked["id"].(string)
	held := booked["held_cents"].(float64)
	// North Unit's visits need approval: the visitation officer approves it,
	// through the domain on the server's database.
	approve(t, db, id)

	// The visit's time has come: its slot is moved to now (it started a minute
	// ago), as the clock would; slots are only offered two hours ahead.
	now := time.Now().UTC()
	if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET starts_at = $2, ends_at = $3 WHERE id = $1",
		id, now.Add(-time.Minute), now.Add(19*time.Minute)); err != nil {
		t.Fatal(err)
	}

	row := func() (state string, connected, charged int64) {
		t.Helper()
		if err := db.Read().QueryRowContext(ctx, "SELECT state, connected_seconds, charged_cents FROM visits WHERE id = $1", id).
			Scan(&state, &connected, &charged); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Both sides join and publish; the test keeps when the later one began, so
	// that it knows the most the server could count as connected.
	join := func(label string) (family, resident *rtctest.Client, began time.Time, stop func()) {
		pubCtx, cancel := context.WithCancel(ctx)
		began = time.Now()
		family = rtctest.NewClient(t, "ana-"+label)
		family.Connect(rtc.NewSocketConn(dialSignal(t, base, "/api/v1/visits/"+id+"/signal", http.Header{"Authorization": {"Bearer " + token}}, nil)), true)
		resident = rtctest.NewClient(t, "jose-"+label)
		resident.Connect(rtc.NewSocketConn(dialSignal(t, base, "/kiosk/visits/"+id+"/signal", nil, station)), true)
		go family.Publish(pubCtx)
		go resident.Publish(pubCtx)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if family.Got("jose-"+label) > 0 && resident.Got("ana-"+label) > 0 &&
				family.LastState().State == rtc.StateConnected && resident.LastState().State == rtc.StateConnected {
				break
			}
			if time.Now().After(deadline) {
				state, connected, _ := row()
				t.Fatalf("no media both ways (%s) within 20 s: the family got %d packets, is %s, was told %q; the resident got %d, is %s, was told %q; the visit is %s with %d s connected",
					label, family.Got("jose-"+label), family.PC.ConnectionState(), family.LastState().State,
					resident.Got("ana-"+label), resident.PC.ConnectionState(), resident.LastState().State, state, connected)
			}
		}
		return family, resident, began, func() { cancel(); family.PC.Close(); resident.PC.Close() }
	}
	_, _, began, stop := join("1")
	// The room keeps the connected time every ten seconds.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if state, connected, _ := row(); state == "live" && connected > 0 {
			break
		}
		if time.Now().After(deadline) {
			state, connected, _ := row()
			t.Fatalf("the visit is %s with %d s connected", state, connected)
		}
	}

	killFirst(syscall.SIGKILL)
	killed := time.Now()
	stop()
	phase1 := killed.Sub(began)
	state, kept, _ := row()
	if state != "live" {
		t.Fatalf("after the kill the visit is %s", state)
	}
	t.Logf("killed after %s of both sides connecting; %d s connected kept", phase1.Round(time.Millisecond), kept)

	// The server is down a while (both sides would have seen their call drop),
	// then comes back on the same data and the same media port.
	time.Sleep(time.Until(killed.Add(visitDownTime)))
	stopSecond := start("serve")
	defer stopSecond(syscall.SIGTERM)
	restarted := time.Now()
	family, _, began, stop := join("2")
	defer stop()
	flowing := time.Now()
	if state, _, _ := row(); state != "live" {
		t.Fatalf("after the rejoin the visit is %s", state)
	}
	time.Sleep(3 * time.Second) // the call goes on a little
	family.Send(rtc.Message{Type: rtc.TypeEnd})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if state, _, _ := row(); state != "live" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the family's end never ended the visit")
		}
	}
	phase2 := time.Since(began)
	t.Logf("down %s; media both ways again %s after the restart; connected again for at most %s",
		restarted.Sub(killed).Round(time.Millisecond), flowing.Sub(restarted).Round(time.Millisecond), phase2.Round(time.Millisecond))

	var endedBy, reason string
	var rate int
	var connected, charged int64
	if err := db.Read().QueryRowContext(ctx, "SELECT state, ended_by, reason, connected_seconds, charged_cents, rate_mills FROM visits WHERE id = $1", id).
		Scan(&state, &endedBy, &reason, &connected, &charged, &rate); err != nil {
		t.Fatal(err)
	}
	t.Logf("completed: %d s connected (%d s kept before the kill), %d¢ charged at %d mills a minute", connected, kept, charged, rate)
	if state != "completed" || endedBy != "family" || reason != "hung_up" {
		t.Errorf("the visit ended %s by %q (%s)", state, endedBy, reason)
	}
	// What was kept goes on, and what connected after the restart adds to it...
	if connected <= kept {
		t.Errorf("connected %d s, no more than the %d s kept before the kill", connected, kept)
	}
	// ...but never the time the server was down: both sides were connected for
	// phase1 + phase2 at most, and the restarted room counts only from kept on.
	if most := phase1 + phase2 + visitMargin; time.Duration(connected)*time.Second >= most {
		t.Errorf("connected %d s, though both sides were connected for at most %s: the %s down counted", connected, phase1+phase2, visitDownTime)
	}
	if most := time.Duration(kept)*time.Second + phase2 + visitMargin/2; time.Duration(connected)*time.Second >= most {
		t.Errorf("connected %d s: more than the %d s kept and the %s after the restart", connected, kept, phase2)
	}
	// Charged for the connected minutes, rounded up (the room rounds its exact
	// time, so a whole minute stored may be charged one more).
	minutes := (connected + 59) / 60
	if want := visits.PriceCents(rate, int(minutes)); charged != want && (connected%60 != 0 || charged != visits.PriceCents(rate, int(minutes)+1)) {
		t.Errorf("charged %d¢ for %d s connected at %d mills a minute; want %d¢", charged, connected, rate, want)
	}
	if charged == 0 {
		t.Error("nothing charged for a visit that connected")
	}
	_, wallet, _ = apiCall(base, "GET", "/api/v1/wallet", token, nil)
	if got := wallet["balance_cents"].(float64); got != funded-float64(charged) {
		t.Errorf("balance %v¢, from %v¢ with %v¢ held and %d¢ charged", got, funded, held, charged)
	}
	verify := exec.Command(bin, "ledger", "verify")
	verify.Env = env
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("ledger verify: %v %s", err, out)
	}
	// Both rooms' recordings are kept: the killed server's, merged by the restarted
	// one at its start, and the one after the restart.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM visit_recordings WHERE visit_id = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d recordings of the visit kept, want the two rooms'", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// approve has the demo's visitation officer approve a visit, through the domain
// services on the server's database.
func approve(t *testing.T, db *database.DB, visitID string) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewService(ctx, db, identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 1, 4, time.Second), common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	fac := facility.NewService(db, id, log)
	caps, err := visits.ParseRateCaps(visits.DefaultRateCaps)
	if err != nil {
		t.Fatal(err)
	}
	svc := visits.NewService(db, fac, contacts.NewService(db, fac), ledger.New(db), caps, nil)
	var officer string
	if err := db.Read().QueryRowContext(ctx, "SELECT id FROM accounts WHERE email = $1", "visitation@example.org").Scan(&officer); err != nil {
		t.Fatal(err)
	}
	access, err := fac.AccessOf(ctx, officer)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Decide(ctx, access, visitID, true, ""); err != nil {
		t.Fatalf("approve: %v", err)
	}
}

// newStation enrols a kiosk with its code and signs a resident in at it: its
// client carries the kiosk's credential and the resident's session, as the
// station's browser does.
func newStation(t *testing.T, base, code, resident, pin string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: secureJar{jar}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s: %d", path, res.StatusCode)
		}
	}
	post("/kiosk/enrol", url.Values{"code": {code}})
	post("/kiosk/login", url.Values{"resident_id": {resident}, "pin": {pin}})
	return c
}

// secureJar keeps the server's Secure (__Host-) cookies over the test's plain HTTP.
type secureJar struct{ jar *cookiejar.Jar }

func (j secureJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.jar.SetCookies(secure(u), cookies)
}
func (j secureJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(secure(u)) }

func secure(u *url.URL) *url.URL {
	c := *u
	c.Scheme = "https"
	return &c
}

// dialSignal opens a visit's signalling WebSocket, with headers (a bearer token)
// or a client carrying cookies (a station).
func dialSignal(t *testing.T, base, path string, h http.Header, client *http.Client) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+path, &websocket.DialOptions{HTTPHeader: h, HTTPClient: client})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %d %v", path, status, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}
