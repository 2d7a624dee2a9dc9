package httpx

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	expslog "golang.org/x/exp/slog"

	"github.com/kinlink/kinlink/internal/media"
)

// Resumable serves the tus 1.0 resumable upload protocol over media.Uploads: an
// app creates an upload with its length, sends it in pieces, asks how far it got
// after a dropped connection and goes on from there. tusd does the protocol and
// writes the pieces; Kinlink decides who may: each upload belongs to the account
// that created it, nobody else learns it exists, an account has a bounded number
// unfinished, and none is larger than the clip limit. Uploads are never served
// back (no download), never joined (no concatenation), and need their length
// from the start.
type Resumable struct {
	tus     *tusd.UnroutedHandler
	uploads *media.Uploads
	account func(context.Context) string
	fail    func(http.ResponseWriter, *http.Request, error)
}

type uploadIDKey struct{}

// UploadLocks keep one upload from being written by two requests at once. Every
// Resumable over the same uploads shares one (the family web's, the kiosk's and
// the API's), or two requests by different ways could write one upload together.
type UploadLocks struct{ locker *memorylocker.MemoryLocker }

// NewUploadLocks makes the locks of one server's uploads. Several servers will
// need a shared locker, as they will need a shared upload store.
func NewUploadLocks() *UploadLocks { return &UploadLocks{memorylocker.New()} }

// NewResumable serves uploads whose addresses start with base (an absolute URL
// ending in "/", so the Location handed back is right behind a proxy too).
// owner says whose a request is (an account, or a resident at a kiosk: its route
// checked that there is one); fail answers a refusal in the surface's own way.
func NewResumable(u *media.Uploads, locks *UploadLocks, base string, owner func(context.Context) string, fail func(http.ResponseWriter, *http.Request, error)) (*Resumable, error) {
	composer := tusd.NewStoreComposer()
	filestore.New(u.Dir()).UseIn(composer)
	locks.locker.UseIn(composer)
	rs := &Resumable{uploads: u, account: owner, fail: fail}
	h, err := tusd.NewUnroutedHandler(tusd.Config{
		StoreComposer:        composer,
		BasePath:             base,
		MaxSize:              u.MaxBytes(),
		DisableDownload:      true,
		DisableConcatenation: true,
		Cors:                 &tusd.CorsConfig{Disable: true},
		// Every request is logged by the server's own middleware already.
		Logger:         expslog.New(expslog.NewTextHandler(io.Discard, nil)),
		NetworkTimeout: time.Minute,
		PreUploadCreateCallback: func(hook tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
			id, _ := hook.Context.Value(uploadIDKey{}).(string)
			// The upload keeps no metadata the app sent: a file name tells
			// nothing Kinlink needs, and would be one more thing to keep safe.
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{ID: id, MetaData: tusd.MetaData{}}, nil
		},
		PreFinishResponseCallback: func(hook tusd.HookEvent) (tusd.HTTPResponse, error) {
			return tusd.HTTPResponse{}, u.Finished(hook.Context, hook.Upload.ID)
		},
	})
	if err != nil {
		return nil, err
	}
	rs.tus = h
	return rs, nil
}

// Options answers a client asking which protocol versions and extensions the
// server speaks.
func (rs *Resumable) Options(w http.ResponseWriter, r *http.Request) {
	rs.serve(w, r, "", nil)
}

// Create begins an upload of the length the Upload-Length header says, for the
// signed-in account.
func (rs *Resumable) Create(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Tus-Resumable") != "1.0.0" {
		rs.serve(w, r, "", rs.tus.PostFile) // tusd answers the version mismatch
		return
	}
	size, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	if err != nil {
		rs.fail(w, r, media.ErrUploadLength)
		return
	}
	id, err := rs.uploads.Begin(r.Context(), rs.account(r.Context()), size)
	if err != nil {
		rs.fail(w, r, err)
		return
	}
	rec := &statusWriter{ResponseWriter: w}
	rs.serve(rec, r.WithContext(context.WithValue(r.Context(), uploadIDKey{}, id)), "", rs.tus.PostFile)
	if rec.status != http.StatusCreated {
		// tusd refused what Begin took (a header it does not take): nothing was made.
		rs.uploads.Discard(context.WithoutCancel(r.Context()), id)
	}
}

// Offset says how much of the upload has arrived.
func (rs *Resumable) Offset(w http.ResponseWriter, r *http.Request) {
	rs.owned(w, r, rs.tus.HeadFile)
}

// Append takes the next piece, at the offset Upload-Offset says.
func (rs *Resumable) Append(w http.ResponseWriter, r *http.Request) {
	rs.owned(w, r, rs.tus.PatchFile)
}

// Cancel deletes an unfinished upload.
func (rs *Resumable) Cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := rs.uploads.Owned(r.Context(), rs.account(r.Context()), id); err != nil {
		rs.fail(w, r, err)
		return
	}
	rs.serve(w, r, id, rs.tus.DelFile)
	rs.uploads.Discard(context.WithoutCancel(r.Context()), id)
}

// owned lets the account's own uploads through to tusd; any other id is not found.
func (rs *Resumable) owned(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	id := r.PathValue("id")
	if err := rs.uploads.Owned(r.Context(), rs.account(r.Context()), id); err != nil {
		rs.fail(w, r, err)
		return
	}
	rs.serve(w, r, id, h)
}

// serve hands a request to tusd, which reads the upload's id from the path.
func (rs *Resumable) serve(w http.ResponseWriter, r *http.Request, id string, h http.HandlerFunc) {
	g := &connGuard{ResponseWriter: w, http1: r.ProtoMajor == 1}
	defer g.answer() // for a handler that wrote nothing, net/http answers after it
	r2 := r.Clone(r.Context())
	// tusd would take a POST with this header as the method it names, past the
	// route (and its owner check) that the method chose.
	r2.Header.Del("X-HTTP-Method-Override")
	r2.URL.Path = id
	r2.URL.RawPath = ""
	if r2.Body == nil || r2.Body == http.NoBody {
		g.bodyDone()
	} else {
		r2.Body = &guardedBody{ReadCloser: r2.Body, g: g}
	}
	if h == nil {
		h = func(http.ResponseWriter, *http.Request) {}
	}
	rs.tus.Middleware(h).ServeHTTP(g, r2)
}

// connGuard is the response writer tusd gets, guarding the connection's
// deadlines. tusd moves the read deadline ahead as a piece arrives, and sets it
// to now to stop reading a piece when another request for the same upload asks
// for its lock (an app resuming after a connection it took for dropped). It does
// the latter from a goroutine of its own, which may run once the piece has all
// arrived, or been answered. By then net/http is reading the connection ahead
// for the next request on it, and that read timing out cancels the connection's
// context (golang/go#70834): every later request on the keep-alive connection
// would begin cancelled, and an API call be answered 200 with nothing. So a
// deadline reaches the connection only while the body may still be being read
// and before the answer; one that stops the read also has the answer close the
// connection, for the last read of a body starts net/http's read ahead within
// it, before this guard can know the body has ended. (HTTP/2 has no read ahead
// to spoil: its deadlines are a stream's.)
type connGuard struct {
	http.ResponseWriter
	http1 bool
	mu    sync.Mutex
	// settled: the body has ended, the answer has begun or the handler has
	// returned; the connection's deadlines are net/http's again.
	settled  bool
	answered bool
	stopped  bool // a read was stopped: the connection is not to be reused
}

func (g *connGuard) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.settled {
		return nil
	}
	if !t.After(time.Now()) {
		g.stopped = true
	}
	return http.NewResponseController(g.ResponseWriter).SetReadDeadline(t)
}

func (g *connGuard) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.settled {
		return nil
	}
	return http.NewResponseController(g.ResponseWriter).SetWriteDeadline(t)
}

func (g *connGuard) WriteHeader(code int) {
	g.answer()
	g.ResponseWriter.WriteHeader(code)
}

func (g *connGuard) Write(b []byte) (int, error) {
	g.answer()
	return g.ResponseWriter.Write(b)
}

func (g *connGuard) Flush() {
	g.answer()
	http.NewResponseController(g.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the writer's other abilities.
func (g *connGuard) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// answer is called as the answer begins, while its headers can still change.
func (g *connGuard) answer() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped && !g.answered && g.http1 {
		g.Header().Set("Connection", "close")
	}
	g.answered, g.settled = true, true
}

func (g *connGuard) bodyDone() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.settled = true
}

// guardedBody tells the guard when the request's body has ended.
type guardedBody struct {
	io.ReadCloser
	g *connGuard
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.g.bodyDone()
	}
	return n, err
}
