package instances_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/instances"
)

var ctx = context.Background()

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// An instance is there while it beats; 30 seconds unseen, it is gone; once it
// leaves, it is unknown.
func TestAnInstanceIsThereWhileItBeats(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		now := time.Date(2027, 3, 2, 14, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		a := instances.New(db, "a", "http://10.0.0.1:8080/", quiet())
		b := instances.New(db, "b", "http://10.0.0.2:8080", quiet())
		a.SetClock(clock)
		b.SetClock(clock)
		if url, alive, err := b.Where(ctx, "a"); err != nil || alive || url != "" {
			t.Fatalf("before a joined: %q %t %v", url, alive, err)
		}
		if err := a.Join(ctx); err != nil {
			t.Fatal(err)
		}
		if url, alive, err := b.Where(ctx, "a"); err != nil || !alive || url != "http://10.0.0.1:8080" {
			t.Fatalf("a joined: %q %t %v", url, alive, err)
		}
		now = now.Add(25 * time.Second)
		if err := a.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		now = now.Add(29 * time.Second)
		if _, alive, _ := b.Where(ctx, "a"); !alive {
			t.Fatal("29 s after a beat: gone")
		}
		now = now.Add(time.Second)
		if _, alive, _ := b.Where(ctx, "a"); alive {
			t.Fatal("30 s after a beat: still there")
		}
		// A restart under the same name replaces the row: the old key no longer
		// beats, and says so by taking the row back.
		again := instances.New(db, "a", "http://10.0.0.9:8080", quiet())
		again.SetClock(clock)
		if err := again.Join(ctx); err != nil {
			t.Fatal(err)
		}
		if url, alive, _ := b.Where(ctx, "a"); !alive || url != "http://10.0.0.9:8080" {
			t.Fatalf("a restarted: %q %t", url, alive)
		}
		again.Leave(ctx)
		if url, alive, err := b.Where(ctx, "a"); err != nil || alive || url != "" {
			t.Fatalf("a left: %q %t %v", url, alive, err)
		}
	})
}

// A hop header verifies only as its instance signed it: for that request, within
// 30 s, while the instance is there. A client's copy, or one moved to another
// request, is a request from a client.
func TestAHopHeaderVerifiesOnlyAsSigned(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		a := instances.New(db, "a", "http://127.0.0.1:1", quiet())
		b := instances.New(db, "b", "", quiet())
		for _, r := range []*instances.Registry{a, b} {
			if err := r.Join(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// B forwards to a backend standing for A, which reads the hop header.
		var got http.Header
		var host string
		owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, host = r.Header.Clone(), r.Host
			by := a.ForwardedBy(r.Context(), r.Header.Get(instances.HopHeader), r.Method, r.Host, r.URL.RequestURI())
			w.Header().Set("By", by)
			w.WriteHeader(http.StatusTeapot)
		}))
		defer owner.Close()
		refused := func(w http.ResponseWriter, r *http.Request, err error) { t.Errorf("refused: %v", err) }
		req := httptest.NewRequest("GET", "https://kinlink.example.org/visits/v1/signal?x=1", nil)
		req.Header.Set("Origin", "https://kinlink.example.org")
		req.Header.Set("Cookie", "__Host-session=s")
		req.Header.Set(instances.HopHeader, "b;t=1;sig=00")
		req.RemoteAddr = "192.0.2.7:5555"
		rec := httptest.NewRecorder()
		b.Forward(rec, req, owner.URL, refused)
		if rec.Code != http.StatusTeapot || rec.Header().Get("By") != "b" {
			t.Fatalf("forwarded: %d by %q", rec.Code, rec.Header().Get("By"))
		}
		if host != "kinlink.example.org" || got.Get("Origin") != "https://kinlink.example.org" || got.Get("Cookie") != "__Host-session=s" ||
			got.Get("X-Forwarded-For") != "192.0.2.7" {
			t.Fatalf("the owner saw host %q and %v", host, got)
		}
		signed := got.Get(instances.HopHeader)
		for name, check := range map[string]func() string{
			"another path": func() string {
				return a.ForwardedBy(ctx, signed, "GET", "kinlink.example.org", "/visits/v2/signal?x=1")
			},
			"another host": func() string { return a.ForwardedBy(ctx, signed, "GET", "evil.example", "/visits/v1/signal?x=1") },
			"another name": func() string {
				return a.ForwardedBy(ctx, "a"+signed[1:], "GET", "kinlink.example.org", "/visits/v1/signal?x=1")
			},
			"a client's own": func() string {
				return a.ForwardedBy(ctx, "b;t=1;sig=00", "GET", "kinlink.example.org", "/visits/v1/signal?x=1")
			},
		} {
			if by := check(); by != "" {
				t.Errorf("%s: verified as from %q", name, by)
			}
		}
		if by := a.ForwardedBy(ctx, signed, "GET", "kinlink.example.org", "/visits/v1/signal?x=1"); by != "b" {
			t.Fatalf("as signed: %q", by)
		}

		// A forwarded request is never forwarded again, and an instance never
		// forwards to itself.
		var why error
		refuse := func(w http.ResponseWriter, r *http.Request, err error) {
			why = err
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		again := httptest.NewRequest("GET", "https://kinlink.example.org/visits/v1/signal?x=1", nil)
		again.Header.Set(instances.HopHeader, signed)
		a.Forward(httptest.NewRecorder(), again, owner.URL, refuse)
		if !errors.Is(why, instances.ErrLoop) {
			t.Fatalf("forwarding a forwarded request: %v", why)
		}
		why = nil
		a.Forward(httptest.NewRecorder(), httptest.NewRequest("GET", "/visits/v1/signal", nil), "http://127.0.0.1:1/", refuse)
		if !errors.Is(why, instances.ErrSelf) {
			t.Fatalf("forwarding to itself: %v", why)
		}
		// B gone: its signature no longer verifies.
		b.Leave(ctx)
		if by := a.ForwardedBy(ctx, signed, "GET", "kinlink.example.org", "/visits/v1/signal?x=1"); by != "" {
			t.Fatalf("from an instance that left: %q", by)
		}
		// An owner that cannot be reached: refused, not hung.
		why = nil
		a.Forward(httptest.NewRecorder(), httptest.NewRequest("GET", "/visits/v1/signal", nil), "http://127.0.0.1:9/", refuse)
		if why == nil {
			t.Fatal("an unreachable owner was not refused")
		}
	})
}
