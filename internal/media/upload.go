package media

import (
	"errors"
	"fmt"
	"mime/multipart"
	"time"
)

// ErrTooManyPhotos is more than MaxPhotos photos for one message.
var ErrTooManyPhotos = errors.New("media: more than 5 photos")

// PhotoError says which upload was refused (N counts from 1) and why (Err is one
// of ErrTooLarge, ErrNotImage, ErrTooManyPixels, ErrBroken).
type PhotoError struct {
	N    int
	Name string
	Err  error
}

func (e *PhotoError) Error() string { return fmt.Sprintf("photo %d (%s): %v", e.N, e.Name, e.Err) }
func (e *PhotoError) Unwrap() error { return e.Err }

// ProcessUploads processes the photos of a multipart form, in order.
func ProcessUploads(files []*multipart.FileHeader) ([]Photo, error) {
	if len(files) > MaxPhotos {
		return nil, ErrTooManyPhotos
	}
	out := make([]Photo, 0, len(files))
	for i, fh := range files {
		if fh.Size > MaxPhotoBytes {
			return nil, &PhotoError{N: i + 1, Name: fh.Filename, Err: ErrTooLarge}
		}
		f, err := fh.Open()
		if err != nil {
			return nil, err
		}
		p, err := ProcessPhoto(f) // bounded by the decode memory budget
		f.Close()
		if err != nil {
			return nil, &PhotoError{N: i + 1, Name: fh.Filename, Err: err}
		}
		out = append(out, p)
	}
	return out, nil
}

// UploadTime is how long a request carrying photos may take to arrive.
const UploadTime = 10 * time.Minute
