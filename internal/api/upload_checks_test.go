package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// bigBody is a request body of the given parts, made as it is read, counting what
// the client has taken of it to send.
type bigBody struct {
	r           io.Reader
	size, taken atomic.Int64
	contentType string
}

func (b *bigBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.taken.Add(int64(n))
	return n, err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// photoPart is a file of a form: n bytes read from r.
type photoPart struct {
	r io.Reader
	n int64
}

// formBody is a message form as the app sends it: the text, then the photos.
func formBody(text string, photos ...photoPart) *bigBody {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	mw.WriteField("text", text)
	var parts []io.Reader
	size := int64(0)
	add := func(r io.Reader, n int64) { parts = append(parts, r); size += n }
	for i, p := range photos {
		mw.CreateFormFile("photos", fmt.Sprintf("photo%d.jpg", i+1))
		add(bytes.NewReader(bytes.Clone(head.Bytes())), int64(head.Len()))
		head.Reset()
		add(p.r, p.n)
	}
	mw.Close()
	add(bytes.NewReader(head.Bytes()), int64(head.Len()))
	b := &bigBody{r: io.MultiReader(parts...), contentType: mw.FormDataContentType()}
	b.size.Store(size)
	return b
}

// filler is n bytes of nothing, as a photo's.
func filler(n int64) photoPart { return photoPart{io.LimitReader(zeros{}, n), n} }

// bigForm is a message form with five photos of almost 10 MB each (50 MB).
func bigForm(text string) *bigBody {
	photos := make([]photoPart, media.MaxPhotos)
	for i := range photos {
		photos[i] = filler(media.MaxPhotoBytes - 1<<10)
	}
	return formBody(text, photos...)
}

// post sends the body to a contact's messages, and returns the answer and how much
// of the body the client had sent when it came.
func (b *bigBody) post(t *testing.T, w *world, token, contact, key string) (*apptest.Response, map[string]any, int64) {
	t.Helper()
	req, _ := http.NewRequest("POST", w.URL+"/api/v1/contacts/"+contact+"/messages", b)
	req.ContentLength = b.size.Load()
	req.Header.Set("Content-Type", b.contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	res, err := w.Client.Do(req)
	if err != nil {
		t.Fatalf("post %d MB: %v", b.size.Load()>>20, err)
	}
	sent := b.taken.Load()
	out := &apptest.Response{Response: res, Raw: apptest.Body(t, res)}
	w.OnResponse(t, req, out)
	var body map[string]any
	json.Unmarshal([]byte(out.Raw), &body)
	return out, body, sent
}

// Issue 13, item 9, over the API: 50 MB of photos to someone else's contact, from
// an empty wallet, or from a wallet that pays for the text but not for a photo, are
// refused while the app is still sending them: the answer comes when at most a
// fraction has left the client (what the server read and what the network holds on
// the way), and the server closes the connection rather than read the rest. So is
// a URL-encoded form of 50 MB, from its header. Before, the server read all of it
// and then refused.
func TestAPIUploadsAreCheckedBeforeTheyAreRead(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		refusedEarly := func(what string, res *apptest.Response, sent, size int64) {
			t.Helper()
			t.Logf("%s: %d KB of %d MB sent when answered", what, sent>>10, size>>20)
			if sent > size/4 {
				t.Errorf("%s: the answer came after %d MB of %d MB had been sent", what, sent>>20, size>>20)
			}
			if !res.Close {
				t.Errorf("%s: the server kept the connection, as if it had read the rest", what)
			}
		}

		other := w.register(t, "other@example.org")
		big := bigForm("hola")
		res, body, sent := big.post(t, w, other, contact, "o1")
		if res.StatusCode != http.StatusNotFound || errCode(body) != "not_found" {
			t.Errorf("50 MB to a contact not theirs: %d %s", res.StatusCode, res.Raw)
		}
		refusedEarly("a contact not theirs", res, sent, big.size.Load())

		big = bigForm("hola")
		res, body, sent = big.post(t, w, token, contact, "e1")
		if res.StatusCode != http.StatusPaymentRequired || errCode(body) != "insufficient_balance" {
			t.Errorf("50 MB from an empty wallet: %d %s", res.StatusCode, res.Raw)
		}
		refusedEarly("an empty wallet", res, sent, big.size.Load())

		// A key of a message she sent is no way past the check of another contact.
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		if res, _ := w.send(t, token, contact, "sent-1", map[string]string{"text": "hola"}, nil); res.StatusCode != http.StatusCreated {
			t.Fatalf("a text: %d %s", res.StatusCode, res.Raw)
		}
		big = bigForm("hola")
		res, body, sent = big.post(t, w, token, ids.New(), "sent-1")
		if res.StatusCode != http.StatusNotFound || errCode(body) != "not_found" {
			t.Errorf("50 MB to a contact not hers, under the key of a message sent: %d %s", res.StatusCode, res.Raw)
		}
		refusedEarly("a contact not hers, under a key used", res, sent, big.size.Load())

		// $4.90, and stamps of $3: the text alone could go, not with a photo.
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		if _, err := db.Write().Exec("UPDATE agencies SET stamp_price_cents = 300 WHERE code = 'FLDOC'"); err != nil {
			t.Fatal(err)
		}
		big = bigForm("hola")
		res, body, sent = big.post(t, w, token, contact, "e2")
		if res.StatusCode != http.StatusPaymentRequired || errCode(body) != "insufficient_balance" {
			t.Errorf("50 MB from a wallet that pays for the text only: %d %s", res.StatusCode, res.Raw)
		}
		refusedEarly("a wallet that pays for the text only", res, sent, big.size.Load())

		form := &bigBody{r: io.MultiReader(strings.NewReader("text="), io.LimitReader(zeros{}, 50<<20-5)), contentType: "application/x-www-form-urlencoded"}
		form.size.Store(50 << 20)
		res, body, sent = form.post(t, w, token, contact, "u1")
		if res.StatusCode != http.StatusRequestEntityTooLarge || errCode(body) != "payload_too_large" {
			t.Errorf("a URL-encoded form of 50 MB: %d %s", res.StatusCode, res.Raw)
		}
		refusedEarly("a URL-encoded form of 50 MB", res, sent, form.size.Load())

		// A photo past 10 MB stops the reading at its 10 MB: the photos after it are
		// not read.
		if _, err := db.Write().Exec("UPDATE agencies SET stamp_price_cents = 10 WHERE code = 'FLDOC'"); err != nil {
			t.Fatal(err)
		}
		jpeg := mediatest.JPEG(64, 48)
		big = formBody("hola", photoPart{bytes.NewReader(jpeg), int64(len(jpeg))}, filler(media.MaxPhotoBytes+1<<20), filler(30<<20))
		res, body, sent = big.post(t, w, token, contact, "l1")
		if res.StatusCode != http.StatusRequestEntityTooLarge || errCode(body) != "photo_too_large" || !strings.Contains(res.Raw, `"photos[1]":"too_large"`) {
			t.Errorf("a second photo of 11 MB: %d %s", res.StatusCode, res.Raw)
		}
		t.Logf("a photo past 10 MB: %d KB of %d MB sent when answered", sent>>10, big.size.Load()>>20)
		if sent > big.size.Load()/2 {
			t.Errorf("a photo past 10 MB: the answer came after %d MB of %d MB had been sent", sent>>20, big.size.Load()>>20)
		}
		if _, wallet := w.JSON(t, "GET", "/api/v1/wallet", nil, bearer(token)...); wallet["balance_cents"] != float64(490) {
			t.Errorf("balance after refused sends: %v", wallet["balance_cents"])
		}
	})
}

// slowForm is a message form with one photo whose second half waits until finish
// is closed, as from a phone on a weak signal; abort makes the app give up.
type slowForm struct {
	head, tail  []byte
	finish      chan struct{}
	ctx         context.Context
	abort       context.CancelFunc
	contentType string
	waited      bool
}

func newSlowForm(text string) *slowForm {
	// Half of it (about 25 KB) must fill the client's 4 KB write buffer: a smaller head stays
	// in that buffer, never reaches the server, and no place is taken.
	photo := mediatest.JPEG(1200, 900)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("text", text)
	fw, _ := mw.CreateFormFile("photos", "photo.jpg")
	fw.Write(photo)
	half := body.Len() - len(photo)/2
	mw.Close()
	ctx, abort := context.WithCancel(context.Background())
	return &slowForm{head: body.Bytes()[:half], tail: body.Bytes()[half:], finish: make(chan struct{}), ctx: ctx, abort: abort, contentType: mw.FormDataContentType()}
}

func (s *slowForm) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	if !s.waited {
		select {
		case <-s.finish:
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
		s.waited = true
	}
	if len(s.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.tail)
	s.tail = s.tail[n:]
	return n, nil
}

// start sends it in the background; the status (0 for none) comes on the channel.
func (s *slowForm) start(t *testing.T, w *world, token, contact, key string) <-chan int {
	req, _ := http.NewRequestWithContext(s.ctx, "POST", w.URL+"/api/v1/contacts/"+contact+"/messages", s)
	req.ContentLength = int64(len(s.head) + len(s.tail))
	req.Header.Set("Content-Type", s.contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	out := make(chan int, 1)
	go func() {
		res, err := w.Client.Do(req)
		if err != nil {
			out <- 0
			return
		}
		res.Body.Close()
		out <- res.StatusCode
	}()
	t.Cleanup(s.abort)
	return out
}

// Issue 13, item 9, over the API: one account has at most two sends with photos
// arriving at once. While two slow uploads are on their way, a third is told to
// wait (429 uploads_busy, Retry-After); an upload the app gives up on gives its
// place back, and the slow ones go through when they finish.
func TestAPIThirdUploadAtOnceWaits(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		// A third send with a photo, sent whole: once the server holds the two slow
		// ones, it is refused before its photo is read. (Until then its photo,
		// which is no picture, is refused as such, and nothing is sent.)
		third := func() (*apptest.Response, map[string]any) {
			return w.send(t, token, contact, "", map[string]string{"text": "tercera"}, []byte("not a picture"))
		}
		// A third that reaches the server before the second slow one has taken its
		// place takes it for a moment, and the second slow one is then told to wait
		// (and its client, still sending, cannot tell): such a round starts again
		// with two new slow uploads. The pause before the third only makes that
		// rare; the rounds are bounded (all packages' tests share two cores).
		var first, second *slowForm
		var firstDone, secondDone <-chan int
		var res *apptest.Response
		var body map[string]any
		for round := 1; ; round++ {
			first, second = newSlowForm("primera"), newSlowForm("segunda")
			firstDone, secondDone = first.start(t, w, token, contact, fmt.Sprint("s1-", round)), second.start(t, w, token, contact, fmt.Sprint("s2-", round))
			time.Sleep(300 * time.Millisecond)
			if res, body = third(); res.StatusCode == http.StatusTooManyRequests {
				break
			}
			if res.StatusCode != http.StatusUnsupportedMediaType || round == 30 {
				t.Fatalf("a third upload while two are arriving (round %d, the slow ones: %s): %d %s, never 429", round, slowState(firstDone, secondDone), res.StatusCode, res.Raw)
			}
			first.abort()
			second.abort()
			<-firstDone
			<-secondDone
		}
		if errCode(body) != "uploads_busy" || res.Header.Get("Retry-After") == "" {
			t.Errorf("the third upload's refusal: %s, Retry-After %q", res.Raw, res.Header.Get("Retry-After"))
		}

		first.abort()
		if status := <-firstDone; status != 0 {
			t.Errorf("the abandoned upload was answered: %d", status)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			res, _ := third()
			if res.StatusCode == http.StatusUnsupportedMediaType {
				break
			}
			if res.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
				t.Fatalf("after an upload was abandoned: %d %s", res.StatusCode, res.Raw)
			}
		}
		close(second.finish)
		if status := <-secondDone; status != http.StatusCreated {
			t.Fatalf("the slow upload that finished: %d", status)
		}
		_, page := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages", nil, bearer(token)...)
		if msgs := page["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["text"] != "segunda" {
			t.Errorf("what was sent: only the upload that finished: %v", msgs)
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
