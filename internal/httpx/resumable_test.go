package httpx_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/problem"
)

type accountKey struct{}

// uploadServer serves tus under /uploads/ for two accounts, told apart by an
// X-Account header (a stand-in for the surfaces' own sign-in).
func uploadServer(t *testing.T, db *database.DB, maxBytes int64) (*httptest.Server, *media.Uploads) {
	t.Helper()
	now := time.Now().UTC()
	for _, a := range []string{"ana", "bea"} {
		if _, err := db.Write().Exec(`INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question, security_answer_hash, status, created_at, password_changed_at)
			VALUES ($1, $2, $1, 'en', 'x', 'q', 'x', 'active', $3, $3)`, a, a+"@example.org", now); err != nil {
			t.Fatal(err)
		}
	}
	uploads, err := media.NewUploads(db, filepath.Join(t.TempDir(), "uploads"), maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		p, ok := problem.As(err)
		if !ok {
			http.Error(w, err.Error(), 500)
			return
		}
		http.Error(w, p.Code, httpx.Status(p))
	}
	rs, err := httpx.NewResumable(uploads, httpx.NewUploadLocks(), srv.URL+"/uploads/", func(ctx context.Context) string {
		return ctx.Value(accountKey{}).(string)
	}, fail)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// A surface's sign-in looks the session up in the database, which
			// fails for a cancelled request on PostgreSQL (SQLite's reads run to
			// the end): here it fails on both.
			if err := r.Context().Err(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			h(w, r.WithContext(context.WithValue(r.Context(), accountKey{}, r.Header.Get("X-Account"))))
		}
	}
	mux.HandleFunc("OPTIONS /uploads/", rs.Options)
	mux.HandleFunc("POST /uploads/", signed(rs.Create))
	mux.HandleFunc("HEAD /uploads/{id}", signed(rs.Offset))
	mux.HandleFunc("PATCH /uploads/{id}", signed(rs.Append))
	mux.HandleFunc("DELETE /uploads/{id}", signed(rs.Cancel))
	return srv, uploads
}

func tus(t *testing.T, method, url, account string, body io.Reader, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("X-Account", account)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestResumableUploadInPieces(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		srv, uploads := uploadServer(t, db, 1<<20)
		clip := make([]byte, 300_000)
		rand.Read(clip)

		res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Length", strconv.Itoa(len(clip)),
			"Upload-Metadata", "filename "+"L2V0Yy9wYXNzd2Q=")
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d", res.StatusCode)
		}
		loc := res.Header.Get("Location")
		id := loc[strings.LastIndex(loc, "/")+1:]
		if !strings.HasPrefix(loc, srv.URL+"/uploads/") || len(id) != 32 {
			t.Fatalf("Location %q", loc)
		}

		// The first piece arrives; the connection drops in the second.
		res = tus(t, "PATCH", loc, "ana", bytes.NewReader(clip[:100_000]), "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Upload-Offset") != "100000" {
			t.Fatalf("first piece: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
		}
		// Somebody else can neither see nor continue it, nor cancel it.
		for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
			res = tus(t, m, loc, "bea", bytes.NewReader(clip[100_000:]), "Upload-Offset", "100000", "Content-Type", "application/offset+octet-stream")
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("%s by another account: %d, want 404", m, res.StatusCode)
			}
		}
		res = tus(t, "HEAD", loc, "ana", nil)
		if res.Header.Get("Upload-Offset") != "100000" || res.Header.Get("Upload-Length") != strconv.Itoa(len(clip)) {
			t.Fatalf("after the drop: offset %q length %q", res.Header.Get("Upload-Offset"), res.Header.Get("Upload-Length"))
		}
		// A piece at the wrong offset is refused and changes nothing.
		res = tus(t, "PATCH", loc, "ana", bytes.NewReader(clip[:10]), "Upload-Offset", "5", "Content-Type", "application/offset+octet-stream")
		if res.StatusCode != http.StatusConflict {
			t.Errorf("wrong offset: %d, want 409", res.StatusCode)
		}
		// Before it is whole, a VideoGram cannot be made of it.
		err := db.InTx(context.Background(), func(tx *sql.Tx) error {
			_, err := uploads.Use(context.Background(), tx, "ana", id)
			return err
		})
		if !errors.Is(err, media.ErrUploadIncomplete) {
			t.Errorf("using an unfinished upload: %v", err)
		}
		res = tus(t, "PATCH", loc, "ana", bytes.NewReader(clip[100_000:]), "Upload-Offset", "100000", "Content-Type", "application/offset+octet-stream")
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Upload-Offset") != strconv.Itoa(len(clip)) {
			t.Fatalf("rest: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
		}

		// Another account cannot use it; its owner can, once.
		var path string
		err = db.InTx(context.Background(), func(tx *sql.Tx) error {
			if _, err := uploads.Use(context.Background(), tx, "bea", id); !errors.Is(err, media.ErrUploadNotFound) {
				t.Errorf("another account's use: %v", err)
			}
			var err error
			path, err = uploads.Use(context.Background(), tx, "ana", id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, clip) {
			t.Error("the upload's bytes differ from what was sent")
		}
		if info, _ := os.ReadFile(path + ".info"); bytes.Contains(info, []byte("L2V0Yy9wYXNzd2Q")) {
			t.Error("the app's metadata was kept")
		}
		err = db.InTx(context.Background(), func(tx *sql.Tx) error {
			_, err := uploads.Use(context.Background(), tx, "ana", id)
			return err
		})
		if !errors.Is(err, media.ErrUploadUsed) {
			t.Errorf("a second use: %v", err)
		}
		// A used upload is no longer anyone's to continue.
		if res = tus(t, "HEAD", loc, "ana", nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD of a used upload: %d", res.StatusCode)
		}
	})
}

func TestResumableUploadLimits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		srv, uploads := uploadServer(t, db, 1<<20)
		// Larger than the limit, or of no stated length.
		if res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Length", strconv.Itoa(1<<20+1)); res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("too large: %d, want 413", res.StatusCode)
		}
		if res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Defer-Length", "1"); res.StatusCode != http.StatusBadRequest {
			t.Errorf("deferred length: %d, want 400", res.StatusCode)
		}
		// Joining uploads (another's pieces among them) is not offered.
		if res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Length", "10", "Upload-Concat", "partial"); res.StatusCode/100 == 2 {
			t.Errorf("concatenation: %d", res.StatusCode)
		}
		// Three unfinished at once, and no fourth; another account is not held up.
		var first string
		for i := range media.MaxOpenUploads {
			res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Length", "100")
			if res.StatusCode != http.StatusCreated {
				t.Fatalf("upload %d: %d", i+1, res.StatusCode)
			}
			if first == "" {
				first = res.Header.Get("Location")
			}
		}
		if res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Length", "100"); res.StatusCode != http.StatusTooManyRequests {
			t.Errorf("a fourth unfinished upload: %d, want 429", res.StatusCode)
		}
		if res := tus(t, "POST", srv.URL+"/uploads/", "bea", nil, "Upload-Length", "100"); res.StatusCode != http.StatusCreated {
			t.Errorf("another account: %d", res.StatusCode)
		}
		// Cancelling one makes room, and deletes its bytes.
		if res := tus(t, "DELETE", first, "ana", nil); res.StatusCode != http.StatusNoContent {
			t.Fatalf("cancel: %d", res.StatusCode)
		}
		if _, err := os.Stat(uploads.Path(first[strings.LastIndex(first, "/")+1:])); !os.IsNotExist(err) {
			t.Errorf("a cancelled upload's bytes are still there: %v", err)
		}
		if res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Length", "100"); res.StatusCode != http.StatusCreated {
			t.Errorf("after cancelling: %d", res.StatusCode)
		}
		// Not downloadable, and a method override does not pass the owner check.
		res := tus(t, "POST", srv.URL+"/uploads/", "bea", bytes.NewReader([]byte("x")), "X-HTTP-Method-Override", "PATCH", "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
		if res.StatusCode == http.StatusNoContent {
			t.Error("a POST overridden to PATCH went through")
		}
		// A day later the unfinished ones are swept, bytes and all.
		n, err := uploads.Sweep(context.Background(), time.Now().Add(media.UploadLife+time.Minute))
		if err != nil || n < media.MaxOpenUploads {
			t.Errorf("swept %d, %v", n, err)
		}
		left, _ := os.ReadDir(uploads.Dir())
		if len(left) != 0 {
			t.Errorf("left after the sweep: %d files", len(left))
		}
	})
}

// A piece that has all arrived is being recorded when another request for the
// same upload asks for its lock (the app resuming after a connection it thought
// dropped). tusd then stops the piece's reading by setting the read deadline of
// its connection to now, from a goroutine of its own; with the body all read,
// net/http is by then reading that connection ahead for the next request, and
// the deadline cancelled the connection's context: every later request on the
// keep-alive connection began cancelled, and an API call on it was answered 200
// with nothing (seen as a flaky VideoGram test on PostgreSQL).
func TestResumableLockTakeoverSparesTheConnection(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		srv, uploads := uploadServer(t, db, 1<<20)
		clip := make([]byte, 100_000)
		rand.Read(clip)
		res := tus(t, "POST", srv.URL+"/uploads/", "ana", nil, "Upload-Length", strconv.Itoa(len(clip)))
		loc := res.Header.Get("Location")
		id := loc[strings.LastIndex(loc, "/")+1:]

		// The piece's own client, on a keep-alive connection of its own.
		phone := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
		t.Cleanup(phone.CloseIdleConnections)
		// do returns the status, the Upload-Offset and the body of the answer.
		do := func(method string, body []byte, headers ...string) (int, string, string) {
			req, _ := http.NewRequest(method, loc, bytes.NewReader(body))
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("X-Account", "ana")
			for i := 0; i+1 < len(headers); i += 2 {
				req.Header.Set(headers[i], headers[i+1])
			}
			res, err := phone.Do(req)
			if err != nil {
				return 0, "", err.Error()
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode, res.Header.Get("Upload-Offset"), string(b)
		}
		whole := strconv.Itoa(len(clip))

		// Recording that the upload is whole waits on the database while the
		// lock is asked for.
		tx, err := db.Write().Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec("UPDATE uploads SET finished_at = NULL WHERE id = $1", id); err != nil {
			t.Fatal(err)
		}
		piece := make(chan string, 1)
		go func() {
			status, offset, body := do("PATCH", clip, "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
			piece <- fmt.Sprintf("%d %s %s", status, offset, body)
		}()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if fi, err := os.Stat(uploads.Path(id)); err == nil && fi.Size() == int64(len(clip)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the piece never arrived")
			}
		}
		asked := make(chan string, 1)
		go func() {
			req, _ := http.NewRequest("HEAD", loc, nil)
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("X-Account", "ana")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				asked <- err.Error()
				return
			}
			res.Body.Close()
			asked <- fmt.Sprintf("%d %s", res.StatusCode, res.Header.Get("Upload-Offset"))
		}()
		// Time for the HEAD to ask for the lock, which it then waits for. Too short
		// a pause would let this test pass without showing anything, never fail.
		time.Sleep(300 * time.Millisecond)
		tx.Rollback()

		if got := <-piece; got != "204 "+whole+" " {
			t.Fatalf("the piece: %s", got)
		}
		if got := <-asked; got != "200 "+whole {
			t.Fatalf("the HEAD that asked for the lock: %s", got)
		}
		// The phone's next requests are answered as any other.
		for i := range 3 {
			if status, offset, body := do("HEAD", nil); status != http.StatusOK || offset != whole {
				t.Fatalf("request %d after the takeover: %d offset %q %s", i+1, status, offset, body)
			}
		}
	})
}
