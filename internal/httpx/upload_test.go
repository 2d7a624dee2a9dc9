package httpx_test

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/httpx"
)

// form is a multipart body of fields and files, in this order: each pair is a name
// and a value; a name "file:NAME" makes the value a file NAME of field "photos",
// and "stray:NAME" one of field "stray".
func form(pairs ...string) (string, *bytes.Buffer) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i := 0; i+1 < len(pairs); i += 2 {
		if field, name, ok := strings.Cut(pairs[i], ":"); ok {
			w, _ := mw.CreateFormFile(map[string]string{"file": "photos", "stray": "stray"}[field], name)
			w.Write([]byte(pairs[i+1]))
			continue
		}
		mw.WriteField(pairs[i], pairs[i+1])
	}
	mw.Close()
	return mw.FormDataContentType(), &body
}

// A streamed form keeps its fields and files, in memory while its memory lasts and
// in temporary files beyond, which RemoveAll removes; check is asked before each
// file, with the fields before it known.
func TestStreamFormKeepsFieldsAndFiles(t *testing.T) {
	temp := t.TempDir()
	t.Setenv("TMPDIR", temp)
	ct, body := form("key", "k1", "file:a.jpg", strings.Repeat("a", 10), "file:b.jpg", strings.Repeat("b", 100), "prepaid_reply", "on")
	r := httptest.NewRequest("POST", "/x", body)
	r.Header.Set("Content-Type", ct)
	var asked []string
	f, err := httpx.StreamForm(r, "photos", httpx.FormLimits{Fields: 1 << 10, File: 1 << 10, Memory: 50}, func(n int) error {
		asked = append(asked, r.PostFormValue("key")+"/"+r.PostFormValue("prepaid_reply"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.RemoveAll()
	if strings.Join(asked, ",") != "k1/,k1/" || r.PostFormValue("prepaid_reply") != "on" || len(f.Files) != 2 {
		t.Fatalf("asked %q, prepaid %q, %d files", asked, r.PostFormValue("prepaid_reply"), len(f.Files))
	}
	for i, want := range []string{strings.Repeat("a", 10), strings.Repeat("b", 100)} {
		rc, err := f.Files[i].Open()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != want || f.Files[i].Name() != []string{"a.jpg", "b.jpg"}[i] {
			t.Errorf("file %d: %q %q", i, f.Files[i].Name(), got)
		}
	}
	spilled, _ := os.ReadDir(temp)
	f.RemoveAll()
	left, _ := os.ReadDir(temp)
	if len(spilled) != 1 || len(left) != 0 {
		t.Errorf("files in the temporary folder: %d spilled, %d left after RemoveAll", len(spilled), len(left))
	}
}

// Reading stops at the first problem: check's refusal before a file, a file past
// its limit, fields past theirs.
func TestStreamFormStopsAtTheFirstProblem(t *testing.T) {
	refused := errors.New("no")
	lim := httpx.FormLimits{Fields: 1 << 10, File: 50, Memory: 1 << 10}
	for _, c := range []struct {
		name  string
		pairs []string
		check func(n int) error
		want  func(error) bool
	}{
		{"refused before the second file", []string{"file:a.jpg", "a", "file:b.jpg", "b"},
			func(n int) error {
				if n == 2 {
					return refused
				}
				return nil
			}, func(err error) bool { return errors.Is(err, refused) }},
		{"a file past its limit", []string{"file:a.jpg", "a", "file:b.jpg", strings.Repeat("b", 51)}, nil,
			func(err error) bool {
				var big *httpx.FileTooLarge
				return errors.As(err, &big) && big.N == 2 && big.Name == "b.jpg"
			}},
		{"fields past theirs", []string{"text", strings.Repeat("t", 2<<10), "file:a.jpg", "a"},
			func(int) error { return errors.New("a file was reached") }, func(err error) bool { return errors.Is(err, httpx.ErrFieldsTooLarge) }},
		{"a file of another field, within the fields' budget", []string{"stray:x.txt", "x", "file:a.jpg", "a"}, nil,
			func(err error) bool { return err == nil }},
		{"a file of another field, past the fields' budget", []string{"stray:x.txt", strings.Repeat("x", 2<<10), "file:a.jpg", "a"},
			func(int) error { return errors.New("a file was reached") }, func(err error) bool { return errors.Is(err, httpx.ErrFieldsTooLarge) }},
	} {
		ct, body := form(c.pairs...)
		r := httptest.NewRequest("POST", "/x", body)
		r.Header.Set("Content-Type", ct)
		check := c.check
		if check == nil {
			check = func(int) error { return nil }
		}
		f, err := httpx.StreamForm(r, "photos", lim, check)
		f.RemoveAll()
		if !c.want(err) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
