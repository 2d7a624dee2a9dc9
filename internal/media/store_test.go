package media_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// Both stores keep the same promises: what was put comes back byte for byte, a key
// never put or deleted reads as ErrNoBlob, deleting twice is fine, and a key that is
// not an id is refused rather than turned into a path or an object name.
func TestStoresKeepTheSamePromises(t *testing.T) {
	ctx := context.Background()
	s3cfg, backend := mediatest.S3(t)
	s3, err := media.OpenS3(ctx, s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, store := range map[string]media.Store{"disk": media.Disk{Dir: t.TempDir()}, "s3": s3} {
		t.Run(name, func(t *testing.T) {
			key, photo := ids.New(), mediatest.JPEG(40, 30)
			if err := store.Put(ctx, key, photo); err != nil {
				t.Fatal(err)
			}
			if got, err := store.Get(ctx, key); err != nil || !bytes.Equal(got, photo) {
				t.Fatalf("read back %d bytes of %d: %v", len(got), len(photo), err)
			}
			if _, err := store.Get(ctx, ids.New()); !errors.Is(err, media.ErrNoBlob) {
				t.Errorf("a key never put: %v", err)
			}
			// A file goes in without being read into memory, and comes out in parts.
			big := make([]byte, 3<<20)
			for i := range big {
				big[i] = byte(i * 7)
			}
			file := filepath.Join(t.TempDir(), "clip.mp4")
			os.WriteFile(file, big, 0o600)
			fileKey := ids.New()
			if err := store.PutFile(ctx, fileKey, file); err != nil {
				t.Fatal(err)
			}
			blob, err := store.Open(ctx, fileKey)
			if err != nil {
				t.Fatal(err)
			}
			part := make([]byte, 1000)
			if blob.Size() != int64(len(big)) {
				t.Errorf("size %d, want %d", blob.Size(), len(big))
			}
			if _, err := blob.Seek(2<<20, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(blob, part); err != nil || !bytes.Equal(part, big[2<<20:2<<20+1000]) {
				t.Errorf("a part from the middle: %v", err)
			}
			blob.Close()
			if _, err := store.Open(ctx, ids.New()); !errors.Is(err, media.ErrNoBlob) {
				t.Errorf("opening a key never put: %v", err)
			}
			store.Delete(ctx, fileKey)
			if err := store.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Get(ctx, key); !errors.Is(err, media.ErrNoBlob) {
				t.Errorf("a deleted key: %v", err)
			}
			if err := store.Delete(ctx, key); err != nil {
				t.Errorf("deleting what is gone: %v", err)
			}
			for _, bad := range []string{"../../etc/passwd", "", "a/b", strings.Repeat("x", 300)} {
				if err := store.Put(ctx, bad, photo); err == nil {
					t.Errorf("key %q was accepted", bad)
				}
				if _, err := store.Get(ctx, bad); !errors.Is(err, media.ErrNoBlob) {
					t.Errorf("key %q read as %v", bad, err)
				}
			}
		})
	}
	// The S3 objects live under the prefix, and nothing is left of the deleted one.
	s3.Put(ctx, "0123456789abcdef0123456789abcdef", []byte("x"))
	list, err := backend.ListBucket("kinlink-media", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range list.Contents {
		names = append(names, o.Key)
	}
	if len(names) != 1 || names[0] != "photos/0123456789abcdef0123456789abcdef" {
		t.Errorf("objects in the bucket: %v", names)
	}
}

func TestOpenS3ExplainsAWrongSetting(t *testing.T) {
	ctx := context.Background()
	cfg, _ := mediatest.S3(t)
	missing := cfg
	missing.Bucket = "no-such-bucket"
	if _, err := media.OpenS3(ctx, missing); err == nil || !strings.Contains(err.Error(), `no bucket "no-such-bucket"`) {
		t.Errorf("a missing bucket: %v", err)
	}
	nowhere := cfg
	nowhere.Endpoint = "127.0.0.1:1"
	ctx, cancel := context.WithTimeout(ctx, time.Second) // the client retries a refused connection for a while
	defer cancel()
	if _, err := media.OpenS3(ctx, nowhere); err == nil || !strings.Contains(err.Error(), "cannot reach bucket") {
		t.Errorf("an endpoint that does not answer: %v", err)
	}
}
