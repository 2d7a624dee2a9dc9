package api_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// dialAt opens a visit's signalling WebSocket on the server at base.
func dialAt(t *testing.T, base, token, visitID, origin string) (*websocket.Conn, int) {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/v1/visits/"+visitID+"/signal", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if res == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, res.StatusCode
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

// closing is a signalling connection that keeps why the server closed it.
type closing struct {
	rtc.SocketConn
	closed chan error
}

func watchClose(c *websocket.Conn) closing {
	return closing{rtc.NewSocketConn(c), make(chan error, 1)}
}

func (c closing) Read(ctx context.Context) (rtc.Message, error) {
	m, err := c.SocketConn.Read(ctx)
	if err != nil {
		select {
		case c.closed <- err:
		default:
		}
	}
	return m, err
}

// Two servers share one PostgreSQL database. A visit's room opens on the one
// the family reaches first, and is pinned to it; the family's next connection,
// through the other server, is passed on to the first and replaces the earlier
// one in the same room, instead of opening a second room. Once the first server
// has stopped and is no longer seen, the other takes the room over.
func TestSignallingReachesTheRoomFromAnyInstance(t *testing.T) {
	var setting string
	for _, e := range dbtest.Engines(t) {
		if e.Name == "postgres" {
			setting = e.Setting
		}
	}
	if setting == "" {
		t.Skipf("several instances share a PostgreSQL database: set %s", dbtest.PostgresEnv)
	}
	vw := startVisitsWith(t, setting, map[string]string{"KINLINK_INSTANCE": "kinlink-a"})
	b := start(t, setting, map[string]string{"KINLINK_VIDEO_VISITS": "on", "KINLINK_INSTANCE": "kinlink-b"})
	vw.topUp(t, vw.tokenA, 2000)
	res, v := vw.book(t, vw.tokenA, "instances-1", vw.contactA, vw.at(vw.day(2), 9, 0))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("book: %d %v", res.StatusCode, v)
	}
	id := v["id"].(string)
	db := dbtest.Open(t, setting)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET starts_at = $2, ends_at = $3 WHERE id = $1",
		id, now.Add(-time.Minute), now.Add(19*time.Minute)); err != nil {
		t.Fatal(err)
	}
	pinned := func() string {
		var name string
		if err := db.Read().QueryRowContext(ctx, "SELECT room_instance FROM visits WHERE id = $1", id).Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	// Both servers are in the registry, each at its own listener.
	for name, url := range map[string]string{"kinlink-a": vw.URL, "kinlink-b": b.URL} {
		var got string
		if err := db.Read().QueryRowContext(ctx, "SELECT url FROM instances WHERE name = $1", name).Scan(&got); err != nil || got != url {
			t.Fatalf("%s registered at %q (%v), listens at %s", name, got, err, url)
		}
	}

	// Ana joins on A: the room opens there.
	c, status := dialAt(t, vw.URL, vw.tokenA, id, "")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("joining on A: %d", status)
	}
	first := watchClose(c)
	onA := rtctest.NewClient(t, "ana")
	onA.Connect(first, true)
	rtctest.Eventually(t, "waiting on A", func() bool { return onA.LastState().State == rtc.StateWaiting })
	if got := pinned(); got != "kinlink-a" {
		t.Fatalf("room_instance %q after a join on A", got)
	}

	// Through B: another site's page is still refused (by A, from the Origin and
	// Host as they came), another family's token too.
	if _, status := dialAt(t, b.URL, vw.tokenA, id, "https://evil.example"); status != http.StatusForbidden {
		t.Fatalf("another site's page through B: %d", status)
	}
	if _, status := dialAt(t, b.URL, vw.tokenB, id, ""); status != http.StatusNotFound {
		t.Fatalf("another family through B: %d", status)
	}
	// Ana joins again, through B, with a hop header of her own making: it is not
	// signed, so it changes nothing. B passes the join on to A, where it replaces
	// her connection in the room: B reached A's room rather than opening one.
	h := http.Header{"Authorization": {"Bearer " + vw.tokenA}, "Kinlink-Forwarded-By": {"kinlink-b;t=" + strconv.FormatInt(time.Now().Unix(), 10) + ";sig=00"}}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	forged, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(b.URL, "http")+"/api/v1/visits/"+id+"/signal", &websocket.DialOptions{HTTPHeader: h})
	cancel()
	if err != nil {
		t.Fatalf("a join through B with a client's hop header: %v", err)
	}
	t.Cleanup(func() { forged.CloseNow() })
	select {
	case err := <-first.closed:
		if reason := closeReason(err); reason != "joined again elsewhere" {
			t.Fatalf("A's connection closed: %q (%v)", reason, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the join through B did not reach A's room")
	}
	if got := pinned(); got != "kinlink-a" {
		t.Fatalf("room_instance %q after a join through B", got)
	}

	// And again through B, as an app would, to the end: the ICE servers, then
	// the room's state, from A's room.
	c, status = dialAt(t, b.URL, vw.tokenA, id, "")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("joining through B: %d", status)
	}
	viaB := rtctest.NewClient(t, "ana-again")
	second := watchClose(c)
	viaB.Connect(second, true)
	rtctest.Eventually(t, "waiting through B", func() bool {
		return len(viaB.Config()) == 1 && viaB.LastState().State == rtc.StateWaiting && viaB.LastState().Role == rtc.Family
	})
	if got := pinned(); got != "kinlink-a" {
		t.Fatalf("room_instance %q after a join through B", got)
	}

	// A stops: its room is dropped and it leaves the registry; B's connection to
	// it ends.
	vw.Stop()
	select {
	case <-second.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the connection through B outlived A")
	}
	// Had A died instead (no goodbye), its row would stay: seen lately, B sends
	// the join to A and, A unreachable, answers 503 for the app to retry; once
	// unseen for 30 s, B takes the room over.
	if _, err := db.Write().ExecContext(ctx, `INSERT INTO instances (name, url, hop_key, started_at, seen_at) VALUES ('kinlink-a', $1, 'aa', $2, $2)`,
		vw.URL, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	r, body := b.JSON(t, "GET", "/api/v1/visits/"+id+"/signal", nil, bearer(vw.tokenA)...)
	if code, _ := body["error"].(map[string]any)["code"].(string); r.StatusCode != http.StatusServiceUnavailable || code != "room_unreachable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("a join through B with A dead but seen lately: %d %v", r.StatusCode, body)
	}
	if _, err := db.Write().ExecContext(ctx, "UPDATE instances SET seen_at = $2 WHERE name = $1", "kinlink-a", time.Now().UTC().Add(-31*time.Second)); err != nil {
		t.Fatal(err)
	}
	c, status = dialAt(t, b.URL, vw.tokenA, id, "")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("joining on B once A is gone: %d", status)
	}
	onB := rtctest.NewClient(t, "ana-on-b")
	onB.Connect(rtc.NewSocketConn(c), true)
	rtctest.Eventually(t, "waiting on B", func() bool { return onB.LastState().State == rtc.StateWaiting })
	if got := pinned(); got != "kinlink-b" {
		t.Fatalf("room_instance %q after B took the room over", got)
	}
}

// closeReason is the reason a WebSocket was closed with.
func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}
