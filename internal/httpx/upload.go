package httpx

import (
	"io"
	"mime/multipart"
	"net/http"

	"github.com/kinlink/kinlink/internal/media"
)

// FormFiles are the files of a parsed multipart form's field, as the uploads a
// domain call takes.
func FormFiles(r *http.Request, field string) []media.Upload {
	if r.MultipartForm == nil {
		return nil
	}
	var out []media.Upload
	for _, fh := range r.MultipartForm.File[field] {
		out = append(out, formFile{fh})
	}
	return out
}

type formFile struct{ *multipart.FileHeader }

func (f formFile) Name() string                 { return f.Filename }
func (f formFile) Open() (io.ReadCloser, error) { return f.FileHeader.Open() }
