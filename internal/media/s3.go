package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kinlink/kinlink/internal/ids"
)

// S3Config names a bucket of an S3-compatible object store (AWS S3, MinIO, Ceph,
// Garage, a cloud's own): where it is and the key that may write to it.
type S3Config struct {
	Endpoint  string // host[:port], no scheme
	Bucket    string
	Region    string // "" lets the client ask the store
	AccessKey string
	SecretKey string
	TLS       bool   // https; off only for a store on the same private network
	Prefix    string // put before every key, e.g. "kinlink/": one bucket may serve several uses
}

// S3 keeps blobs as objects of one bucket. An object is written whole by one PUT,
// so a reader never sees half a photo, as with Disk's rename.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string
}

// OpenS3 connects to the store and checks that the bucket is there and answers, so
// that a wrong setting stops the server at start-up rather than at the first photo.
func OpenS3(ctx context.Context, c S3Config) (*S3, error) {
	client, err := minio.New(c.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure: c.TLS,
		Region: c.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("media: S3 endpoint %s: %w", c.Endpoint, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ok, err := client.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("media: cannot reach bucket %q at %s: %w", c.Bucket, c.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("media: there is no bucket %q at %s; create it first", c.Bucket, c.Endpoint)
	}
	return &S3{client: client, bucket: c.Bucket, prefix: c.Prefix}, nil
}

func (s *S3) object(key string) (string, error) {
	if !ids.Valid(key) {
		return "", fmt.Errorf("media: bad key %q", key)
	}
	return s.prefix + key, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, s.bucket, name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", SendContentMd5: true})
	if err != nil {
		return fmt.Errorf("media: put %s: %w", name, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, ErrNoBlob
	}
	obj, err := s.client.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.readError(name, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		return nil, s.readError(name, err)
	}
	return data, nil
}

func (s *S3) readError(name string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound) {
		return ErrNoBlob
	}
	return fmt.Errorf("media: get %s: %w", name, err)
}

// Delete implements Store; deleting what is not there is not an error (S3 says so
// too).
func (s *S3) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("media: delete %s: %w", name, err)
	}
	return nil
}

// PutFile implements Store; the client sends a large file in parts.
func (s *S3) PutFile(ctx context.Context, key, path string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if _, err := s.client.FPutObject(ctx, s.bucket, name, path, minio.PutObjectOptions{ContentType: "application/octet-stream"}); err != nil {
		return fmt.Errorf("media: put %s: %w", name, err)
	}
	return nil
}

// Open implements Store: reads after a seek fetch only the range asked for, so a
// player's range requests are passed on to the bucket rather than the whole clip.
func (s *S3) Open(ctx context.Context, key string) (Blob, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, ErrNoBlob
	}
	obj, err := s.client.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.readError(name, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, s.readError(name, err)
	}
	return s3Blob{obj, st.Size, st.LastModified}, nil
}

type s3Blob struct {
	*minio.Object
	size int64
	mod  time.Time
}

func (b s3Blob) Size() int64        { return b.size }
func (b s3Blob) ModTime() time.Time { return b.mod }
