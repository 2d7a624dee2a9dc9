package media

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
)

// Uploads are files a family sends in pieces (the tus protocol), so a clip on a
// phone's weak connection survives a dropped connection or a closed app. The
// pieces arrive in a folder of their own (the tus handler writes them there); the
// uploads table says whose each one is, so only its owner can continue it or make
// a VideoGram of it, and bounds how many an owner has unfinished at once. An owner
// is a family's account (its id) or a resident recording at a kiosk
// (ResidentOwner).
type Uploads struct {
	db       *database.DB
	dir      string
	maxBytes int64
}

// Limits of uploads.
const (
	// MaxOpenUploads is how many unfinished uploads an owner may have: enough for
	// a family retrying a clip on two devices, not for filling the disk.
	MaxOpenUploads = 3
	// UploadLife is how long an unfinished upload is kept for resuming, and a
	// finished one for making a VideoGram of it.
	UploadLife = 24 * time.Hour
)

// Refusals of uploads.
var (
	ErrUploadTooLarge = problem.Declare(problem.TooLarge, "upload_too_large", "media: the upload is larger than allowed").
				Say("upload.too_large")
	ErrUploadLength = problem.Declare(problem.Invalid, "invalid_request", "media: an upload must say its length").
			On("Upload-Length", "required").Say("upload.length")
	ErrTooManyUploads = problem.Declare(problem.RateLimited, "too_many_uploads", "media: too many unfinished uploads").
				Say("upload.too_many")
	ErrUploadNotFound   = problem.Declare(problem.NotFound, "not_found", "media: no such upload")
	ErrUploadIncomplete = problem.Declare(problem.Conflict, "upload_incomplete", "media: the upload is not complete").
				On("upload_id", "incomplete").Say("upload.incomplete")
	ErrUploadUsed = problem.Declare(problem.Conflict, "upload_used", "media: the upload was used already").
			On("upload_id", "used").Say("upload.used")
)

// ResidentOwner is the owner of a resident's uploads (their clips recorded at a
// kiosk). It cannot be an account's id, which has no colon.
func ResidentOwner(residentID string) string { return "resident:" + residentID }

// NewUploads keeps uploads in dir (made if missing), each at most maxBytes.
func NewUploads(db *database.DB, dir string, maxBytes int64) (*Uploads, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("media: uploads folder: %w", err)
	}
	return &Uploads{db: db, dir: dir, maxBytes: maxBytes}, nil
}

// Dir is the folder the pieces are written to.
func (u *Uploads) Dir() string { return u.dir }

// MaxBytes is the largest upload taken.
func (u *Uploads) MaxBytes() int64 { return u.maxBytes }

// Path is where an upload's bytes are.
func (u *Uploads) Path(id string) string { return filepath.Join(u.dir, id) }

// Begin registers a new upload of size bytes for an owner and returns its id. It
// refuses a size past the limit, and a fourth unfinished upload.
func (u *Uploads) Begin(ctx context.Context, owner string, size int64) (string, error) {
	if size <= 0 {
		return "", ErrUploadLength
	}
	if size > u.maxBytes {
		return "", ErrUploadTooLarge.With(u.maxBytes >> 20)
	}
	id := ids.New()
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := u.db.InTx(ctx, func(tx *sql.Tx) error {
		// Two uploads begun at once by one owner must not both pass the count.
		if err := u.db.LockChain(ctx, tx, ownerLock(owner)); err != nil {
			return err
		}
		var open int
		if err := u.db.TxQueryRow(ctx, tx, `SELECT COUNT(*) FROM uploads
			WHERE owner = $1 AND finished_at IS NULL AND created_at > $2`,
			owner, now.Add(-UploadLife)).Scan(&open); err != nil {
			return err
		}
		if open >= MaxOpenUploads {
			return ErrTooManyUploads
		}
		_, err := u.db.TxExec(ctx, tx, `INSERT INTO uploads (id, owner, size, created_at) VALUES ($1, $2, $3, $4)`,
			id, owner, size, now)
		return err
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// ownerLock is the advisory lock of an owner's uploads (PostgreSQL; SQLite's one
// writer serialises them already).
func ownerLock(owner string) int64 {
	h := fnv.New64a()
	h.Write([]byte("uploads:" + owner))
	return int64(h.Sum64() >> 1)
}

// Owned checks that id is an upload of the owner, unused and not expired; any
// other id is not found, so nobody learns of another's uploads.
func (u *Uploads) Owned(ctx context.Context, owner, id string) error {
	if !ids.Valid(id) {
		return ErrUploadNotFound
	}
	var one int
	err := u.db.QueryRow(ctx, `SELECT 1 FROM uploads
		WHERE id = $1 AND owner = $2 AND used_at IS NULL AND created_at > $3`,
		id, owner, time.Now().Add(-UploadLife)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrUploadNotFound
	}
	return err
}

// Finished records that all of an upload's bytes have arrived.
func (u *Uploads) Finished(ctx context.Context, id string) error {
	_, err := u.db.Write().ExecContext(ctx, `UPDATE uploads SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL`,
		time.Now().UTC(), id)
	return err
}

// Use takes a finished upload of the owner for one VideoGram, in the caller's
// transaction (the one that charges for it), and returns where its bytes are. An
// upload is used once: a second VideoGram from it is refused, not charged again.
func (u *Uploads) Use(ctx context.Context, tx *sql.Tx, owner, id string) (string, error) {
	if !ids.Valid(id) {
		return "", ErrUploadNotFound
	}
	// Taken in one conditional update: two sends of one upload at once (PostgreSQL
	// runs them side by side) must not both find it unused.
	now := time.Now().UTC()
	res, err := u.db.TxExec(ctx, tx, `UPDATE uploads SET used_at = $1
		WHERE id = $2 AND owner = $3 AND created_at > $4 AND used_at IS NULL AND finished_at IS NOT NULL`, now, id, owner, now.Add(-UploadLife))
	if err != nil {
		return "", err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return u.Path(id), nil
	}
	// Not taken: say why.
	var finished, used sql.NullTime
	err = u.db.TxQueryRow(ctx, tx, `SELECT finished_at, used_at FROM uploads
		WHERE id = $1 AND owner = $2 AND created_at > $3`, id, owner, now.Add(-UploadLife)).Scan(&finished, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", ErrUploadNotFound
	case err != nil:
		return "", err
	case used.Valid:
		return "", ErrUploadUsed
	default:
		return "", ErrUploadIncomplete
	}
}

// Forget deletes an upload's bytes and its row, once a clip has been made of it.
// (Discard is for uploads no VideoGram took.)
func (u *Uploads) Forget(ctx context.Context, id string) error {
	if !ids.Valid(id) {
		return nil
	}
	u.removeFiles(id)
	_, err := u.db.Write().ExecContext(ctx, `DELETE FROM uploads WHERE id = $1`, id)
	return err
}

// Discard deletes an upload no VideoGram has taken (a cancelled, refused or
// forgotten one), and only such: one taken meanwhile is kept for its conversion.
func (u *Uploads) Discard(ctx context.Context, id string) error {
	if !ids.Valid(id) {
		return nil
	}
	res, err := u.db.Write().ExecContext(ctx, `DELETE FROM uploads WHERE id = $1 AND used_at IS NULL`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		u.removeFiles(id)
	}
	return nil
}

// removeFiles deletes what the tus store keeps of an upload: its bytes and its
// description.
func (u *Uploads) removeFiles(id string) {
	os.Remove(u.Path(id))
	os.Remove(u.Path(id) + ".info")
}

// Sweep deletes uploads older than UploadLife that no VideoGram took: unfinished
// ones nobody resumed, and finished ones never sent. It returns how many.
func (u *Uploads) Sweep(ctx context.Context, now time.Time) (int, error) {
	rows, err := u.db.Query(ctx, `SELECT id FROM uploads WHERE used_at IS NULL AND created_at <= $1`, now.Add(-UploadLife))
	if err != nil {
		return 0, err
	}
	var old []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		old = append(old, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, id := range old {
		if err := u.Discard(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// Receive takes a whole file in one request (a form's file, without the resumable
// protocol), as an upload of the owner: it is refused past the size limit while
// it is read, and is finished when it returns.
func (u *Uploads) Receive(ctx context.Context, owner string, r io.Reader, size int64) (string, error) {
	if size <= 0 {
		size = u.maxBytes // the form did not say: the limit bounds the reading
	}
	id, err := u.Begin(ctx, owner, size)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(u.Path(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		u.Discard(context.WithoutCancel(ctx), id)
		return "", err
	}
	n, err := io.Copy(f, io.LimitReader(r, u.maxBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > u.maxBytes {
		err = ErrUploadTooLarge.With(u.maxBytes >> 20)
	}
	if err == nil && n == 0 {
		err = ErrUploadLength
	}
	if err != nil {
		u.Discard(context.WithoutCancel(ctx), id)
		return "", err
	}
	return id, u.Finished(ctx, id)
}
