package httpx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/kinlink/kinlink/internal/media"
)

// An upload's form is read as it arrives, part by part in the order sent, rather
// than parsed whole (http.Request.ParseMultipartForm) before the handler looks at
// it: what its first fields say (an idempotency key, the text) and each file's
// place are checked before that file's bytes are read, so a request that cannot
// succeed is answered after a few kilobytes, not after the tens of megabytes of
// photos that follow.

// FormLimits bound a streamed form.
type FormLimits struct {
	// Fields is what everything but the files' bytes may take together: field
	// values, part headers, and files of fields that are not the form's file
	// field (read and dropped). Past it, reading stops with ErrFieldsTooLarge.
	Fields int64
	// File is the most one file may hold; past it, reading stops with a
	// *FileTooLarge.
	File int64
	// Memory is how much of the files is kept in memory; the rest goes to
	// temporary files, removed by RemoveAll.
	Memory int64
}

// ErrFieldsTooLarge is a form whose fields are past FormLimits.Fields.
var ErrFieldsTooLarge = errors.New("httpx: the form's fields are too large")

// ErrBadForm is a body that broke off or is no well-formed multipart form; the
// error wraps what the reader said too (an *http.MaxBytesError past the route's
// limit among them).
var ErrBadForm = errors.New("httpx: the form is broken")

// FileTooLarge is a file past FormLimits.File: the N-th (from 1) of its field,
// sent as Name. The form was read no further.
type FileTooLarge struct {
	N    int
	Name string
}

func (e *FileTooLarge) Error() string { return "httpx: file " + e.Name + " is too large" }

// StreamedForm is what StreamForm kept of a form's files.
type StreamedForm struct {
	Files []media.Upload
	temp  []string
}

// RemoveAll removes the temporary files of the form's files; a nil form has none.
func (f *StreamedForm) RemoveAll() {
	if f == nil {
		return
	}
	for _, name := range f.temp {
		os.Remove(name)
	}
}

// StreamForm reads r's multipart/form-data body in the order it was sent. Field
// values go to r.PostForm (and r.Form) as they arrive, so PostFormValue finds the
// fields read so far even when reading stopped early. Before the bytes of each file
// of fileField, check is told which file of it this is (1 for the first); an error
// from check stops the reading there and is returned as it is. Other errors: a body
// that is not multipart (http.ErrNotMultipart), one past its limits
// (ErrFieldsTooLarge, *FileTooLarge), one broken off or malformed (ErrBadForm,
// wrapping an *http.MaxBytesError past the route's body limit), or a temporary
// file that could not be written. Call RemoveAll on the form, whatever the error.
func StreamForm(r *http.Request, fileField string, lim FormLimits, check func(n int) error) (*StreamedForm, error) {
	form := &StreamedForm{}
	m := &meter{r: r.Body, left: lim.Fields, counting: true}
	r.Body = struct {
		io.Reader
		io.Closer
	}{m, r.Body}
	mr, err := r.MultipartReader()
	if err != nil {
		return form, err
	}
	r.PostForm = url.Values{}
	r.Form = r.URL.Query()
	memory := lim.Memory
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return form, nil
		}
		if err != nil {
			return form, m.why(err)
		}
		name := part.FormName()
		switch {
		case name == "":
			// Go's own form parser skips nameless parts too.
		case part.FileName() == "":
			var value bytes.Buffer
			if _, err := io.Copy(&value, part); err != nil {
				return form, m.why(err)
			}
			r.PostForm.Add(name, value.String())
			r.Form.Add(name, value.String())
		case name != fileField:
			// A file nobody asked for: read within the fields' budget, and dropped.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return form, m.why(err)
			}
		default:
			n := len(form.Files) + 1
			if err := check(n); err != nil {
				return form, err
			}
			m.counting = false
			f, err := form.keep(part.FileName(), part, lim.File, &memory)
			m.counting = true
			var disk *os.PathError
			switch {
			case errors.Is(err, errFileTooLarge):
				return form, &FileTooLarge{N: n, Name: part.FileName()}
			case errors.As(err, &disk):
				return form, fmt.Errorf("httpx: keep an upload: %w", err)
			case err != nil:
				return form, m.why(err)
			}
			form.Files = append(form.Files, f)
		}
	}
}

var errFileTooLarge = errors.New("httpx: file too large")

// keep reads one file: into memory while the form's memory lasts, then into a
// temporary file.
func (form *StreamedForm) keep(name string, part io.Reader, limit int64, memory *int64) (media.Upload, error) {
	// One byte more than the limit tells a file too large.
	part = io.LimitReader(part, limit+1)
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, part, *memory+1)
	switch {
	case err != nil && !errors.Is(err, io.EOF):
		return nil, err
	case n > limit:
		return nil, errFileTooLarge
	case err != nil: // the end of the file, within the memory left
		*memory -= n
		return streamedFile{name: name, data: buf.Bytes()}, nil
	}
	tmp, err := os.CreateTemp("", "kinlink-upload-")
	if err != nil {
		return nil, err
	}
	form.temp = append(form.temp, tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, io.MultiReader(&buf, part))
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, errFileTooLarge
	}
	return streamedFile{name: name, path: tmp.Name()}, tmp.Close()
}

// streamedFile is a file of a streamed form, in memory or in a temporary file.
type streamedFile struct {
	name, path string
	data       []byte
}

func (f streamedFile) Name() string { return f.name }

func (f streamedFile) Open() (io.ReadCloser, error) {
	if f.path != "" {
		return os.Open(f.path)
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

// meter counts what is read of a form outside its files' bytes against the
// fields' budget.
type meter struct {
	r        io.Reader
	left     int64
	counting bool
	over     bool
}

func (m *meter) Read(p []byte) (int, error) {
	if !m.counting {
		return m.r.Read(p)
	}
	if m.left <= 0 {
		m.over = true
		return 0, ErrFieldsTooLarge
	}
	if int64(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := m.r.Read(p)
	m.left -= int64(n)
	return n, err
}

// why is the error that stopped reading the body: the fields' budget, whatever
// the multipart reader made of it, or the body's own.
func (m *meter) why(err error) error {
	if m.over {
		return ErrFieldsTooLarge
	}
	return fmt.Errorf("%w: %w", ErrBadForm, err)
}

// AllowSlowUpload gives a request that carries files time to arrive: photos from
// a phone on a weak signal take longer than the server's usual minute, and its
// answer must still be written after them.
func AllowSlowUpload(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(d))
	rc.SetWriteDeadline(time.Now().Add(d + time.Minute))
}
