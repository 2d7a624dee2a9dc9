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

// Settings are the KINLINK_* settings of a server that keeps its photos in the
// bucket cfg names.
func Settings(cfg media.S3Config) map[string]string {
	return map[string]string{"KINLINK_MEDIA": "s3", "KINLINK_S3_ENDPOINT": "http://" + cfg.Endpoint, "KINLINK_S3_BUCKET": cfg.Bucket,
		"KINLINK_S3_REGION": cfg.Region, "KINLINK_S3_PREFIX": cfg.Prefix, "KINLINK_S3_ACCESS_KEY": cfg.AccessKey, "KINLINK_S3_SECRET_KEY": cfg.SecretKey}
}
