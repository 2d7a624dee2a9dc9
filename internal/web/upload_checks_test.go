package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// bigSend is a conversation form as a browser sends it (the key, the text, then
// five photos of almost 10 MB each: 50 MB), made as it is read, counting what the
// client has taken of it to send.
type bigSend struct {
	io.Reader
	size, taken atomic.Int64
	contentType string
}

func newBigSend(key, text string) *bigSend {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	mw.WriteField("key", key)
	mw.WriteField("text", text)
	var parts []io.Reader
	size := int64(0)
	add := func(r io.Reader, n int64) { parts = append(parts, r); size += n }
	for i := range media.MaxPhotos {
		mw.CreateFormFile("photos", fmt.Sprintf("IMG_%d.jpg", i+1))
		add(bytes.NewReader(bytes.Clone(head.Bytes())), int64(head.Len()))
		head.Reset()
		add(io.LimitReader(zeros{}, media.MaxPhotoBytes-1<<10), media.MaxPhotoBytes-1<<10)
	}
	mw.Close()
	add(bytes.NewReader(head.Bytes()), int64(head.Len()))
	b := &bigSend{Reader: io.MultiReader(parts...), contentType: mw.FormDataContentType()}
	b.size.Store(size)
	return b
}

func (b *bigSend) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.taken.Add(int64(n))
	return n, err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// post sends the 50 MB form to path, and returns the answer and how much of the
// body the client had sent when the answer came.
func (b *bigSend) post(t *testing.T, w *world, path string) (*http.Response, string, int64) {
	t.Helper()
	req, _ := http.NewRequest("POST", w.URL+path, b)
	req.ContentLength = b.size.Load()
	req.Header.Set("Content-Type", b.contentType)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := w.Client.Do(req)
	if err != nil {
		t.Fatalf("post 50 MB: %v", err)
	}
	sent := b.taken.Load()
	return res, readBody(t, res), sent
}

// Issue 13, item 9: a send that cannot go is answered before its photos are read.
// 50 MB of photos to a contact that is not the family's, or from an empty wallet,
// are refused while the client is still sending them: the answer comes when at most
// a fraction has left the client (what the server read and what the network holds
// on the way), and the server closes the connection rather than read the rest.
// Before, the server read all 50 MB and then refused.
func TestUploadsAreCheckedBeforeTheyAreRead(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		_, page := w.get(t, path)
		key := sendKey.FindStringSubmatch(page)[1]
		refusedEarly := func(what string, res *http.Response, sent, size int64) {
			t.Helper()
			t.Logf("%s: %d KB of %d MB sent when answered", what, sent>>10, size>>20)
			if sent > size/4 {
				t.Errorf("%s: the answer came after %d MB of %d MB had been sent", what, sent>>20, size>>20)
			}
			if !res.Close {
				t.Errorf("%s: the server kept the connection, as if it had read the rest", what)
			}
		}

		// Another family, signed in, sends to Ana's contact.
		other := w.browser(t)
		other.signUp(t, "other@example.org")
		big := newBigSend(key, "hola")
		res, _, sent := big.post(t, other, path)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("50 MB to a contact not theirs: %d", res.StatusCode)
		}
		refusedEarly("a contact not theirs", res, sent, big.size.Load())

		// Ana, with nothing in her wallet: told so, with her text kept.
		big = newBigSend(key, "Feliz cumpleaños, mijo")
		res, page, sent = big.post(t, w, path)
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "Feliz cumpleaños, mijo") ||
			!strings.Contains(page, "not enough money") || !strings.Contains(page, "choose the photos again") || !strings.Contains(page, `id="add-money"`) {
			t.Errorf("50 MB from an empty wallet: %d\n%s", res.StatusCode, page)
		}
		refusedEarly("an empty wallet", res, sent, big.size.Load())

		// A body declared larger than the route takes is refused from its header.
		big = newBigSend(key, "hola")
		big.size.Add(2 << 20)
		res, _, sent = big.post(t, w, path)
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a body declared past the limit: %d", res.StatusCode)
		}
		refusedEarly("a body declared past the limit", res, sent, big.size.Load())
	})
}

// slowSend is a conversation form with one photo whose second half waits until
// finish is closed, as from a phone on a weak signal; abort makes it give up.
type slowSend struct {
	head, tail  []byte
	finish      chan struct{}
	ctx         context.Context
	abort       context.CancelFunc
	contentType string
	taken       bool
}

func newSlowSend(key, text string) *slowSend {
	// Half of it (about 25 KB) must fill the client's 4 KB write buffer: a smaller head stays
	// in that buffer, never reaches the server, and no place is taken.
	photo := mediatest.JPEG(1200, 900)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("key", key)
	mw.WriteField("text", text)
	fw, _ := mw.CreateFormFile("photos", "IMG_1.jpg")
	fw.Write(photo)
	half := body.Len() - len(photo)/2
	mw.Close()
	ctx, abort := context.WithCancel(context.Background())
	all := body.Bytes()
	return &slowSend{head: all[:half], tail: all[half:], finish: make(chan struct{}), ctx: ctx, abort: abort, contentType: mw.FormDataContentType()}
}

func (s *slowSend) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	if !s.taken {
		select {
		case <-s.finish:
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
		s.taken = true
	}
	if len(s.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.tail)
	s.tail = s.tail[n:]
	return n, nil
}

// start sends it in the background; the answer (or the error) comes on the channel.
func (s *slowSend) start(t *testing.T, w *world, path string) <-chan *http.Response {
	size := int64(len(s.head) + len(s.tail))
	req, _ := http.NewRequestWithContext(s.ctx, "POST", w.URL+path, s)
	req.ContentLength = size
	req.Header.Set("Content-Type", s.contentType)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	out := make(chan *http.Response, 1)
	go func() {
		res, err := w.Client.Do(req)
		if err != nil {
			res = nil
		} else {
			res.Body.Close()
		}
		out <- res
	}()
	t.Cleanup(func() { s.abort() })
	return out
}

// Issue 13, item 9: one account has at most two sends with photos arriving at
// once. While two slow uploads are on their way, a third is told to wait (429,
// Retry-After) with its text kept; an upload whose sender gives up gives its place
// back, and the slow ones go through when they finish.
func TestThirdUploadAtOnceWaits(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")
		key := func() string {
			_, page := w.get(t, path)
			return sendKey.FindStringSubmatch(page)[1]
		}
		// A third send with a photo, sent whole: once the server holds the two slow
		// ones, it is refused before its photo is read. (Until then its photo,
		// which is no picture, is refused as such, and nothing is sent.)
		third := func() (*http.Response, string) {
			return w.sendForm(t, path, key(), "tercera", []byte("not a picture"))
		}
		// A third that reaches the server before the second slow one has taken its
		// place takes it for a moment, and the second slow one is then told to wait
		// (and its client, still sending, cannot tell): such a round starts again
		// with two new slow uploads. The pause before the third only makes that
		// rare; the rounds are bounded (all packages' tests share two cores).
		var first, second *slowSend
		var firstDone, secondDone <-chan *http.Response
		var res *http.Response
		var page string
		for round := 1; ; round++ {
			first, second = newSlowSend(key(), "primera"), newSlowSend(key(), "segunda")
			firstDone, secondDone = first.start(t, w, path), second.start(t, w, path)
			time.Sleep(300 * time.Millisecond)
			if res, page = third(); res.StatusCode == http.StatusTooManyRequests {
				break
			}
			if res.StatusCode != http.StatusUnsupportedMediaType || round == 30 {
				t.Fatalf("a third upload while two are arriving (round %d, the slow ones: %s): %d, never 429", round, slowState(firstDone, secondDone), res.StatusCode)
			}
			first.abort()
			second.abort()
			<-firstDone
			<-secondDone
		}
		if res.Header.Get("Retry-After") == "" || !strings.Contains(page, "tercera") || !strings.Contains(page, "still on their way") {
			t.Errorf("the third upload's refusal: Retry-After %q\n%s", res.Header.Get("Retry-After"), page)
		}

		// The first gives up (the phone lost its signal): its place is free again.
		first.abort()
		if res := <-firstDone; res != nil {
			t.Errorf("the abandoned upload was answered: %d", res.StatusCode)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			res, _ := third()
			if res.StatusCode == http.StatusUnsupportedMediaType {
				break
			}
			if res.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
				t.Fatalf("after an upload was abandoned: %d", res.StatusCode)
			}
		}
		close(second.finish)
		if res := <-secondDone; res == nil || res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the slow upload that finished: %v", res)
		}
		if _, page := w.get(t, path); !strings.Contains(page, "segunda") || strings.Contains(page, "primera") || strings.Contains(page, ">tercera<") {
			t.Errorf("what was sent: only the upload that finished\n%s", page)
		}
	})
}

// slowState says, for a failure message, whether each slow upload is still arriving
// or was answered (and how); it takes the answers it finds.
func slowState[T any](done ...<-chan T) string {
	var out []string
	for _, c := range done {
		select {
		case v := <-c:
			if res, ok := any(v).(*http.Response); ok && res != nil {
				out = append(out, fmt.Sprintf("answered %d", res.StatusCode))
			} else {
				out = append(out, fmt.Sprintf("answered %v", v))
			}
		default:
			out = append(out, "still arriving")
		}
	}
	return strings.Join(out, ", ")
}
