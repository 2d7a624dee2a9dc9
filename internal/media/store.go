package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
)

// Store keeps blobs by key. Disk is the embedded default; an S3-compatible store
// fits the same interface for deployments beyond one machine.
type Store interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	// PutFile stores a file's contents without holding them in memory (a video).
	PutFile(ctx context.Context, key, path string) error
	// Open reads a blob in parts, for playback with HTTP ranges.
	Open(ctx context.Context, key string) (Blob, error)
}

// Blob is an open blob: it reads from any offset, so http.ServeContent can answer
// a player's range requests from it.
type Blob interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// ErrNoBlob is a key the store does not hold.
var ErrNoBlob = errors.New("media: no such blob")

// Disk stores blobs as files under a folder, two levels deep by key prefix so no
// folder grows huge. Writes go to a temporary file first and are renamed into
// place, so a crash never leaves half a photo under its key.
type Disk struct{ Dir string }

func (d Disk) path(key string) (string, error) {
	if !ids.Valid(key) {
		return "", fmt.Errorf("media: bad key %q", key)
	}
	return filepath.Join(d.Dir, key[:2], key), nil
}

// Put implements Store.
func (d Disk) Put(_ context.Context, key string, data []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Get implements Store.
func (d Disk) Get(_ context.Context, key string) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, ErrNoBlob
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoBlob
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Delete implements Store; deleting what is not there is not an error.
func (d Disk) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// PutFile implements Store: the file is copied beside its place and renamed into it.
func (d Disk) PutFile(ctx context.Context, key, path string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Open implements Store.
func (d Disk) Open(_ context.Context, key string) (Blob, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, ErrNoBlob
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoBlob
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return diskBlob{f, st}, nil
}

type diskBlob struct {
	*os.File
	st os.FileInfo
}

func (b diskBlob) Size() int64        { return b.st.Size() }
func (b diskBlob) ModTime() time.Time { return b.st.ModTime() }
