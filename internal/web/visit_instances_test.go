package web_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/web"
)

// A family's page joins its visit on one server, and again through another
// sharing the PostgreSQL database: the second server passes the WebSocket on, with
// the session cookie as it came, to the first, whose room replaces the page's
// earlier connection. A page of another site is refused there as it would be here.
func TestAVisitPageReachesItsRoomThroughAnotherInstance(t *testing.T) {
	var setting string
	for _, e := range dbtest.Engines(t) {
		if e.Name == "postgres" {
			setting = e.Setting
		}
	}
	if setting == "" {
		t.Skipf("several instances share a PostgreSQL database: set %s", dbtest.PostgresEnv)
	}
	apptest.NeedMediaTools(t)
	w := startWith(t, setting, map[string]string{"KINLINK_VIDEO_VISITS": "on", "KINLINK_INSTANCE": "web-a"})
	b := startWith(t, setting, map[string]string{"KINLINK_VIDEO_VISITS": "on", "KINLINK_INSTANCE": "web-b"})
	contact, _ := approvedContact(t, w, "ana@example.org")
	openVisitDesk(t, w)
	w.topUp(t, "10")
	_, page := w.get(t, "/people/"+contact+"/visits/new")
	res, page := w.book(t, contact, slots(page)[0])
	m := visitPath.FindStringSubmatch(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || m == nil {
		t.Fatalf("booking: %d\n%s", res.StatusCode, page)
	}
	visit := m[1]
	db := dbtest.Open(t, setting)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := db.Write().ExecContext(ctx, "UPDATE visits SET starts_at = $2, ends_at = $3 WHERE id = $1",
		visit, now.Add(-time.Minute), now.Add(19*time.Minute)); err != nil {
		t.Fatal(err)
	}
	session := w.Cookie(web.SessionCookie)
	dial := func(base, origin string) (*websocket.Conn, int) {
		t.Helper()
		h := http.Header{"Cookie": {web.SessionCookie + "=" + session}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, res, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(base, "http")+"/visits/"+visit+"/signal", &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			if res == nil {
				t.Fatalf("dial: %v", err)
			}
			return nil, res.StatusCode
		}
		t.Cleanup(func() { c.CloseNow() })
		return c, http.StatusSwitchingProtocols
	}

	first, status := dial(w.URL, w.URL)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("joining on A: %d", status)
	}
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := first.Read(ctx); err != nil {
				closed <- err
				return
			}
		}
	}()
	pinned := func() string {
		var name string
		if err := db.Read().QueryRowContext(ctx, "SELECT room_instance FROM visits WHERE id = $1", visit).Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	deadline := time.Now().Add(10 * time.Second)
	for pinned() != "web-a" {
		if time.Now().After(deadline) {
			t.Fatalf("room_instance %q after a join on A", pinned())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Through B from A's page: refused by A, which sees the Host the page was
	// not served from.
	if _, status := dial(b.URL, w.URL); status != http.StatusForbidden {
		t.Fatalf("a page of another site through B: %d", status)
	}
	if _, status := dial(b.URL, b.URL); status != http.StatusSwitchingProtocols {
		t.Fatalf("joining through B: %d", status)
	}
	select {
	case err := <-closed:
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Reason != "joined again elsewhere" {
			t.Fatalf("A's connection closed with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the join through B did not reach A's room")
	}
	if got := pinned(); got != "web-a" {
		t.Fatalf("room_instance %q after a join through B", got)
	}
}
