package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kinlink/kinlink/internal/problem"
)

// ErrTooManyPhotos is more than MaxPhotos photos for one message.
var ErrTooManyPhotos = problem.Declare(problem.Invalid, "invalid_request", "media: more than 5 photos").
	On("photos", "too_many").Say("photo.too_many")

// PhotoError says which upload was refused (N counts from 1) and why (Err is one
// of ErrTooLarge, ErrNotImage, ErrTooManyPixels, ErrBroken).
type PhotoError struct {
	N    int
	Name string
	Err  error
}

func (e *PhotoError) Error() string { return fmt.Sprintf("photo %d (%s): %v", e.N, e.Name, e.Err) }
func (e *PhotoError) Unwrap() error { return e.Err }

// The refusals of one photo, by cause.
var (
	errPhotoTooLarge = problem.Declare(problem.TooLarge, "photo_too_large", "media: photo too large").Say("photo.too_large")
	errPhotoPixels   = problem.Declare(problem.TooLarge, "photo_too_large", "media: photo too large in pixels").Say("photo.too_many_pixels")
	errNotImage      = problem.Declare(problem.Unsupported, "unsupported_photo", "media: not a photo").Say("photo.not_image")
	errPhotoBroken   = problem.Declare(problem.Unsupported, "unsupported_photo", "media: broken photo").Say("photo.broken")
)

// Problem is the refusal: which photo (photos[0] is the first) and why, quoting
// its number and file name.
func (e *PhotoError) Problem() *problem.Error {
	declared, why := errPhotoBroken, "broken"
	switch {
	case errors.Is(e.Err, ErrTooLarge):
		declared, why = errPhotoTooLarge, "too_large"
	case errors.Is(e.Err, ErrTooManyPixels):
		declared, why = errPhotoPixels, "too_many_pixels"
	case errors.Is(e.Err, ErrNotImage):
		declared, why = errNotImage, "not_image"
	}
	return declared.WithFields(map[string]string{fmt.Sprintf("photos[%d]", e.N-1): why}).With(e.N, e.Name)
}

// Upload is a file as a person sent it, whatever carried it (a web form, the API).
type Upload interface {
	// Name is the file's name on the sender's device, to say which one was refused.
	Name() string
	Open() (io.ReadCloser, error)
}

// ProcessUploads processes uploaded photos, in order; the first refused is named in
// a *PhotoError.
func (ps *Photos) ProcessUploads(ctx context.Context, uploads []Upload) ([]Photo, error) {
	if len(uploads) > MaxPhotos {
		return nil, ErrTooManyPhotos
	}
	out := make([]Photo, 0, len(uploads))
	for i, u := range uploads {
		f, err := u.Open()
		if err != nil {
			return nil, err
		}
		p, err := ps.Process(ctx, f)
		f.Close()
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrNotImage) || errors.Is(err, ErrTooManyPixels) || errors.Is(err, ErrBroken) {
			return nil, &PhotoError{N: i + 1, Name: u.Name(), Err: err}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// UploadTime is how long a request carrying photos may take to arrive.
const UploadTime = 10 * time.Minute
