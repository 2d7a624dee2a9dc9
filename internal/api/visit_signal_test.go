package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// dial opens a visit's signalling WebSocket with a bearer token (and an Origin,
// when given); it reports the answer's status when the upgrade is refused.
func (vw *visitsWorld) dial(t *testing.T, token, visitID, origin string) (*websocket.Conn, int) {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(vw.URL, "http") + "/api/v1/visits/" + visitID + "/signal"
	c, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if res == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, res.StatusCode
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

// An app joins its visit over the API's WebSocket: the ICE servers first, then
// the server's offer; it waits for the other side. Only the family's own visit,
// only when its waiting room is open, and never from another site's page.
func TestAnAppJoinsItsVisitOverTheWebSocket(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			vw := startVisits(t, e.Setting)
			vw.topUp(t, vw.tokenA, 2000)
			res, v := vw.book(t, vw.tokenA, "join-1", vw.contactA, vw.at(vw.day(2), 9, 0))
			if res.StatusCode != http.StatusCreated {
				t.Fatalf("book: %d %v", res.StatusCode, v)
			}
			id := v["id"].(string)
			if _, status := vw.dial(t, vw.tokenA, id, ""); status != http.StatusConflict {
				t.Fatalf("two days early: %d", status)
			}
			// The visit's time has come: its slot is moved to now, as the clock would.
			db := dbtest.Open(t, vw.Env["KINLINK_DATABASE"])
			now := time.Now().UTC()
			if _, err := db.Write().ExecContext(context.Background(), "UPDATE visits SET starts_at = $2, ends_at = $3 WHERE id = $1",
				id, now.Add(-time.Minute), now.Add(19*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if _, status := vw.dial(t, vw.tokenB, id, ""); status != http.StatusNotFound {
				t.Fatalf("another family: %d", status)
			}
			if _, status := vw.dial(t, vw.tokenA, id, "https://evil.example"); status != http.StatusForbidden {
				t.Fatalf("another site's page: %d", status)
			}
			c, status := vw.dial(t, vw.tokenA, id, "")
			if status != http.StatusSwitchingProtocols {
				t.Fatalf("joining: %d", status)
			}
			app := rtctest.NewClient(t, "ana")
			app.Connect(rtc.NewSocketConn(c), true)
			rtctest.Eventually(t, "waiting for José", func() bool {
				return len(app.Config()) == 1 && app.LastState().State == rtc.StateWaiting && app.LastState().Role == rtc.Family
			})
			if ends := app.LastState().EndsAt; !ends.Equal(now.Add(19*time.Minute).Truncate(time.Microsecond)) && ends.Sub(now) > 20*time.Minute {
				t.Fatalf("ends at %v", ends)
			}
			// Hanging up with the other side absent: nothing connected, nothing charged.
			app.Send(rtc.Message{Type: rtc.TypeEnd})
			rtctest.Eventually(t, "the visit over", func() bool {
				_, got := vw.JSON(t, "GET", "/api/v1/visits/"+id, nil, bearer(vw.tokenA)...)
				return got["state"] == "missed" && got["charged_cents"] == float64(0)
			})
			if b := vw.balance(t, vw.tokenA); b != 2000 {
				t.Fatalf("wallet %v¢ after a visit that never connected", b)
			}
			res, _ = vw.JSON(t, "GET", "/api/v1/visits/"+id+"/ice-servers", nil, bearer(vw.tokenA)...)
			if res.StatusCode != http.StatusConflict {
				t.Fatalf("ICE servers of a visit that is over: %d", res.StatusCode)
			}
		})
	}
}
