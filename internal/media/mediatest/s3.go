package mediatest

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/kinlink/kinlink/internal/media"
)

// S3 starts an S3-compatible server in the test's process (gofakes3, over real HTTP:
// no S3 server can be installed on the test machines) with one empty bucket, and
// returns the settings of that bucket and the server's own view of it. The server
// does not check signatures; minio-go's are trusted as AWS and MinIO accept them.
func S3(t testing.TB) (media.S3Config, *s3mem.Backend) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("kinlink-media"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return media.S3Config{
		Endpoint:  strings.TrimPrefix(srv.URL, "http://"),
		Bucket:    "kinlink-media",
		Region:    "us-east-1",
		AccessKey: "test-access-key",
		SecretKey: "test-secret-key",
		Prefix:    "photos/",
	}, backend
}
