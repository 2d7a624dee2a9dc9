package httpx

import (
	"context"
	"io"
	"net/http"
	"strconv"
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
	r2 := r.Clone(r.Context())
	// tusd would take a POST with this header as the method it names, past the
	// route (and its owner check) that the method chose.
	r2.Header.Del("X-HTTP-Method-Override")
	r2.URL.Path = id
	r2.URL.RawPath = ""
	if h == nil {
		h = func(http.ResponseWriter, *http.Request) {}
	}
	rs.tus.Middleware(h).ServeHTTP(w, r2)
}
