package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// A family checks their camera before any booking: the page, and its loopback
// call through the server, which sends their own media back to them.
func TestAFamilyChecksTheirCameraThroughTheServer(t *testing.T) {
	eachEngineWithVisits(t, func(t *testing.T, w *world) {
		res, _ := w.get(t, "/visits/check")
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("signed out: %d", res.StatusCode)
		}
		w.signUp(t, "ana@example.org")
		res, page := w.get(t, "/visits/check")
		if res.StatusCode != 200 || !strings.Contains(page, `id="check-start"`) || !strings.Contains(page, `src="/static/visit-check.js"`) {
			t.Fatalf("the check page: %d\n%s", res.StatusCode, page)
		}
		if _, page := w.get(t, "/visits"); !strings.Contains(page, `href="/visits/check"`) {
			t.Fatal("my visits do not link the camera check")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		url := "ws" + strings.TrimPrefix(w.URL, "http") + "/visits/check/signal"
		if _, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: w.Client, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}); err == nil || res == nil || res.StatusCode != http.StatusForbidden {
			t.Fatalf("another site's page opened the check: %v", err)
		}
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: w.Client, HTTPHeader: http.Header{"Origin": {w.URL}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		me := rtctest.NewClient(t, "ana")
		me.Connect(rtc.NewSocketConn(c), true)
		go me.Publish(ctx)
		rtctest.Eventually(t, "my own media back", func() bool { return me.Got("ana") > 50 && me.LastState().State == rtc.StateConnected })
		if n := len(me.Config()); n != 1 {
			t.Fatalf("%d config messages", n)
		}
	})
}
