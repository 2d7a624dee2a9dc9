package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/media/mediatest"
	"github.com/kinlink/kinlink/internal/messaging"
)

// contactOfJose sets up an agency that lets messages flow before approval, José
// García (A100), and a family with him as a contact; it returns the family's token
// and the contact id.
func contactOfJose(t *testing.T, w *world) (token, contactID string) {
	t.Helper()
	w.Command(t, "admin", "create-agency", "--code", "FLDOC", "--name", "Florida Department of Corrections", "--state", "FL")
	w.Command(t, "admin", "create-facility", "--agency", "FLDOC", "--code", "FSP", "--name", "Florida State Prison",
		"--type", "prison", "--timezone", "America/New_York", "--population", "1400")
	file := filepath.Join(t.TempDir(), "roster.csv")
	os.WriteFile(file, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\nA100,García,José,FSP,B-12,active,\n"), 0o600)
	w.Command(t, "roster", "import", "--agency", "FLDOC", file, "--apply")
	token = w.register(t, "ana@example.org")
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil, bearer(token)...)
	_, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": found["residents"].([]any)[0].(map[string]any)["id"]}, bearer(token)...)
	return token, c["id"].(string)
}

// send posts a message as multipart/form-data, as the mobile app does.
func (w *world) send(t *testing.T, token, contactID, key string, fields map[string]string, photo []byte) (*apptest.Response, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if photo != nil {
		fw, _ := mw.CreateFormFile("photos", "photo.jpg")
		fw.Write(photo)
	}
	mw.Close()
	headers := append(bearer(token), "Content-Type", mw.FormDataContentType())
	if key != "" {
		headers = append(headers, "Idempotency-Key", key)
	}
	res := w.Do(t, "POST", "/api/v1/contacts/"+contactID+"/messages", &body, headers...)
	out := &apptest.Response{Response: res, Raw: apptest.Body(t, res)}
	var m map[string]any
	json.Unmarshal([]byte(out.Raw), &m)
	if w.OnResponse != nil {
		w.OnResponse(t, res.Request, out)
	}
	return out, m
}

func TestMessagesByAPI(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		auth := bearer(token)
		if res, body := w.send(t, token, contact, "k0", map[string]string{"text": "Hola"}, nil); res.StatusCode != 402 || errCode(body) != "insufficient_balance" {
			t.Fatalf("without money: %d %s", res.StatusCode, res.Raw)
		}
		// What needs no decoding is checked before the photos are decoded (a large one
		// takes a second and tens of megabytes): an empty wallet is told so even when
		// its photo is no image at all.
		if res, body := w.send(t, token, contact, "k0", map[string]string{"text": "Hola"}, []byte("not an image")); res.StatusCode != 402 || errCode(body) != "insufficient_balance" {
			t.Errorf("a photo without money: %d %s", res.StatusCode, res.Raw)
		}
		if res, _ := w.send(t, token, ids.New(), "k0", map[string]string{"text": "Hola"}, []byte("not an image")); res.StatusCode != 404 {
			t.Errorf("a photo to someone else's contact: %d %s", res.StatusCode, res.Raw)
		}
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(auth, "Idempotency-Key", "t1")...)

		// Before sending, the app can show what the message will cost and the terms.
		quote := func(query string) (*apptest.Response, map[string]any) {
			return w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages/quote"+query, nil, auth...)
		}
		if res, q := quote("?photos=2&prepaid_reply=true"); res.StatusCode != 200 || q["cost_stamps"] != float64(3) || q["cost_cents"] != float64(30) ||
			q["stamp_cents"] != float64(10) || q["max_chars"] != float64(6000) || q["max_photos"] != float64(5) || q["reply_stamps"] != float64(0) ||
			q["prepaid_reply"] != false || q["balance_cents"] != float64(500) {
			t.Errorf("the quote of a message with two photos (replies are free): %d %s", res.StatusCode, res.Raw)
		}
		// Bad quotes, and quotes for contacts not the family's: TestRequestMistakesAreNamed
		// and TestWhoMayCallWhat.

		texts := []string{"مرحبا يا بني، أنا أحبك", "儿子，我想你。", "Te quiero 💛👨‍👩‍👦", "Ça va, José? Ñandú, über"}
		for i, text := range texts {
			res, m := w.send(t, token, contact, fmt.Sprint("k", i+1), map[string]string{"text": text}, nil)
			if res.StatusCode != 201 || m["text"] != text || m["state"] != "delivered" || m["cost_stamps"] != float64(1) || m["cost_cents"] != float64(10) {
				t.Fatalf("send %q: %d %s", text, res.StatusCode, res.Raw)
			}
		}
		// A retry with the same key is the same message, charged once.
		_, first := w.send(t, token, contact, "k1", map[string]string{"text": texts[0]}, nil)
		if res, again := w.send(t, token, contact, "k1", map[string]string{"text": texts[0]}, nil); again["id"] != first["id"] || again["created_at"] != first["created_at"] || res.StatusCode != 201 {
			t.Errorf("a retried send: %s", res.Raw)
		}
		if res, body := w.send(t, token, contact, "k1", map[string]string{"text": "something else"}, nil); res.StatusCode != 409 || errCode(body) != "idempotency_key_reused" {
			t.Errorf("a key reused for other text: %d %s", res.StatusCode, res.Raw)
		}
		if _, wallet := w.JSON(t, "GET", "/api/v1/wallet", nil, auth...); wallet["balance_cents"] != float64(460) { // before the photo
			t.Errorf("balance after 4 messages: %v", wallet["balance_cents"])
		}

		if res, body := w.send(t, token, contact, "", map[string]string{"text": strings.Repeat("a", 12<<20)}, nil); res.StatusCode != 413 ||
			errCode(body) != "payload_too_large" || !strings.Contains(res.Raw, `"text":"too_long"`) {
			t.Errorf("a text of 12 MB: %d %.200s", res.StatusCode, res.Raw)
		}
		for _, c := range []struct{ text, field string }{{"  ", "required"}, {strings.Repeat("a", 6001), "too_long"}, {"bad \x00 byte", "invalid"}} {
			res, body := w.send(t, token, contact, "", map[string]string{"text": c.text}, nil)
			if res.StatusCode != 400 || !strings.Contains(res.Raw, `"text":"`+c.field+`"`) {
				t.Errorf("text %.10q: %d %s %v", c.text, res.StatusCode, res.Raw, body)
			}
		}
		// Photos: checked by content, bounded, stripped of metadata, and reviewed.
		if res, body := w.send(t, token, contact, "", map[string]string{"text": "a script"}, []byte("#!/bin/sh\nrm -rf /\n")); res.StatusCode != 415 ||
			errCode(body) != "unsupported_photo" || !strings.Contains(res.Raw, `"photos[0]":"not_image"`) {
			t.Errorf("a script named photo.jpg: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := w.send(t, token, contact, "", map[string]string{"text": "a bomb"}, mediatest.PNGBomb(60000)); res.StatusCode != 413 || errCode(body) != "photo_too_large" {
			t.Errorf("an image bomb: %d %s", res.StatusCode, res.Raw)
		}
		res, withPhoto := w.send(t, token, contact, "p1", map[string]string{"text": "Mira a tu sobrina"}, mediatest.PhoneJPEG(300, 200))
		if res.StatusCode != 201 || withPhoto["state"] != "in_review" || withPhoto["cost_stamps"] != float64(2) || len(withPhoto["photos"].([]any)) != 1 {
			t.Fatalf("a message with a photo: %d %s", res.StatusCode, res.Raw)
		}
		photoURL := withPhoto["photos"].([]any)[0].(string)
		got := w.Do(t, "GET", photoURL, nil, auth...)
		jpg := apptest.Body(t, got)
		if got.StatusCode != 200 || got.Header.Get("Content-Type") != "image/jpeg" || !strings.HasPrefix(jpg, "\xff\xd8") {
			t.Fatalf("the photo: %d %s", got.StatusCode, got.Header.Get("Content-Type"))
		}
		for _, mark := range mediatest.Marks {
			if strings.Contains(jpg, string(mark)) {
				t.Errorf("the stored photo still has %q", mark)
			}
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/contacts/"+contact+"/messages", map[string]any{"text": "json"}, auth...); res.StatusCode != 415 {
			t.Errorf("a JSON body: %d", res.StatusCode)
		}

		// Paging: newest page first, oldest first within it.
		res, page := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages?limit=4", nil, auth...)
		msgs := page["messages"].([]any)
		if res.StatusCode != 200 || len(msgs) != 4 || msgs[2].(map[string]any)["text"] != texts[3] || msgs[3].(map[string]any)["photos"].([]any)[0] != photoURL || page["next_cursor"] == nil {
			t.Fatalf("first page: %d %s", res.StatusCode, res.Raw)
		}
		res, older := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages?limit=4&cursor="+page["next_cursor"].(string), nil, auth...)
		if msgs := older["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["text"] != texts[0] || older["next_cursor"] != nil {
			t.Fatalf("older page: %s", res.Raw)
		}
		// A made-up cursor, and what another family reaches here (nothing, property 33):
		// TestRequestMistakesAreNamed and TestWhoMayCallWhat.

		// Where replies are free, asking for a prepaid reply buys nothing and costs
		// nothing; where the agency charges a stamp for a reply, it costs that stamp.
		if res, m := w.send(t, token, contact, "r1", map[string]string{"text": "¿Me contestas?", "prepaid_reply": "true"}, nil); res.StatusCode != 201 ||
			m["cost_stamps"] != float64(1) || m["prepaid_reply"] != false {
			t.Errorf("a prepaid reply where replies are free: %d %s", res.StatusCode, res.Raw)
		}
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		if _, err := db.Write().Exec(`INSERT INTO message_policies (agency_id, reply_price_stamps) SELECT id, 1 FROM agencies WHERE code = 'FLDOC'
			ON CONFLICT (agency_id) DO UPDATE SET reply_price_stamps = 1`); err != nil {
			t.Fatal(err)
		}
		if res, q := quote("?prepaid_reply=true"); q["cost_stamps"] != float64(2) || q["cost_cents"] != float64(20) || q["reply_stamps"] != float64(1) || q["prepaid_reply"] != true {
			t.Errorf("the quote with a prepaid reply of one stamp: %d %s", res.StatusCode, res.Raw)
		}
		if res, m := w.send(t, token, contact, "r2", map[string]string{"text": "Contéstame cuando puedas", "prepaid_reply": "true"}, nil); res.StatusCode != 201 ||
			m["cost_stamps"] != float64(2) || m["cost_cents"] != float64(20) || m["prepaid_reply"] != true {
			t.Errorf("a prepaid reply of one stamp: %d %s", res.StatusCode, res.Raw)
		}
		// A retry is the same request even if the reply price changed in between:
		// the same message, not a refusal of a reused key.
		if _, err := db.Write().Exec(`INSERT INTO message_policies (agency_id, reply_price_stamps) SELECT id, 0 FROM agencies WHERE code = 'FLDOC'
			ON CONFLICT (agency_id) DO UPDATE SET reply_price_stamps = 0`); err != nil {
			t.Fatal(err)
		}
		if res, m := w.send(t, token, contact, "r2", map[string]string{"text": "Contéstame cuando puedas", "prepaid_reply": "true"}, nil); res.StatusCode != 201 ||
			m["cost_stamps"] != float64(2) || m["prepaid_reply"] != true {
			t.Errorf("the retry after the reply price changed: %d %s", res.StatusCode, res.Raw)
		}
		// A retried photo message is answered as the first time even when the wallet
		// could no longer pay for it; a new one is refused before its photo is decoded.
		if _, err := db.Write().Exec("UPDATE agencies SET stamp_price_cents = 100000 WHERE code = 'FLDOC'"); err != nil {
			t.Fatal(err)
		}
		if res, m := w.send(t, token, contact, "p1", map[string]string{"text": "Mira a tu sobrina"}, mediatest.PhoneJPEG(300, 200)); res.StatusCode != 201 || m["id"] != withPhoto["id"] {
			t.Errorf("the retried photo message with a wallet that cannot pay for it now: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := w.send(t, token, contact, "p2", map[string]string{"text": "Otra foto"}, mediatest.PhoneJPEG(300, 200)); res.StatusCode != 402 || errCode(body) != "insufficient_balance" {
			t.Errorf("a new photo message the wallet cannot pay for: %d %s", res.StatusCode, res.Raw)
		}
		if out := w.Command(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger: %s", out)
		}
	})
}

// Fifty sends at once against a wallet that pays for ten: exactly ten go through,
// and the balance never goes below zero (property 34).
func TestConcurrentSendsNeverOverdraw(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		for i := range 40 { // leave ten stamps' worth
			if res, _ := w.send(t, token, contact, fmt.Sprint("warm", i), map[string]string{"text": "warm-up"}, nil); res.StatusCode != 201 {
				t.Fatalf("warm-up send: %d %s", res.StatusCode, res.Raw)
			}
		}
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				mw.WriteField("text", fmt.Sprint("burst ", i))
				mw.Close()
				req, _ := http.NewRequest("POST", w.URL+"/api/v1/contacts/"+contact+"/messages", &body)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", mw.FormDataContentType())
				req.Header.Set("Idempotency-Key", fmt.Sprint("burst", i))
				res, err := w.Client.Do(req)
				if err != nil {
					t.Errorf("send %d: %v", i, err)
					return
				}
				res.Body.Close()
				mu.Lock()
				codes[res.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[201] != 10 || codes[402] != 40 {
			t.Errorf("answers to 50 sends with money for 10: %v", codes)
		}
		if _, wallet := w.JSON(t, "GET", "/api/v1/wallet", nil, bearer(token)...); wallet["balance_cents"] != float64(0) {
			t.Errorf("balance: %v", wallet["balance_cents"])
		}
		if out := w.Command(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger: %s", out)
		}
	})
}

// A resident the roster restricts from photos gets text, and the family is told
// plainly why a photo cannot go; nothing is charged for the refused send.
func TestNoPhotosRestriction(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token, contact := contactOfJose(t, w)
		file := filepath.Join(t.TempDir(), "roster.csv")
		os.WriteFile(file, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\nA100,García,José,FSP,B-12,active,no_photos\n"), 0o600)
		w.Command(t, "roster", "import", "--agency", "FLDOC", file, "--apply")
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(token), "Idempotency-Key", "t1")...)
		if res, body := w.send(t, token, contact, "p", map[string]string{"text": "Mira"}, mediatest.PhoneJPEG(300, 200)); res.StatusCode != 403 || errCode(body) != "photos_not_allowed" {
			t.Errorf("a photo to a resident without photos: %d %s", res.StatusCode, res.Raw)
		}
		// The quote says so before writing: no photos, and a price for none.
		if res, q := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages/quote", nil, bearer(token)...); res.StatusCode != 200 || q["max_photos"] != float64(0) {
			t.Errorf("the quote for a resident without photos: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := w.JSON(t, "GET", "/api/v1/contacts/"+contact+"/messages/quote?photos=1", nil, bearer(token)...); res.StatusCode != 403 || errCode(body) != "photos_not_allowed" {
			t.Errorf("the quote of a photo to a resident without photos: %d %s", res.StatusCode, res.Raw)
		}
		if res, _ := w.send(t, token, contact, "t", map[string]string{"text": "Te quiero"}, nil); res.StatusCode != 201 {
			t.Errorf("text to a resident without photos: %d %s", res.StatusCode, res.Raw)
		}
		if _, wallet := w.JSON(t, "GET", "/api/v1/wallet", nil, bearer(token)...); wallet["balance_cents"] != float64(490) {
			t.Errorf("balance: %v, want one stamp taken", wallet["balance_cents"])
		}
	})
}

// With KINLINK_MEDIA=s3 a photo goes to the bucket (under the prefix), comes back
// from it as it was stored, and nothing is written to the data folder. Each photo send
// first queues a check of its photos; the send's transaction withdraws it, so only the
// checks of sends that stored no message stay, and when they come due they remove
// the photos no message holds, as a server stopped between storing a photo and
// committing its message leaves behind.
func TestPhotosLiveInAnS3Bucket(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { photosInS3(t, e.Setting) })
	}
}

func photosInS3(t *testing.T, setting string) {
	s3, bucket := mediatest.S3(t)
	w := start(t, setting, mediatest.Settings(s3))
	token, contact := contactOfJose(t, w)
	auth := bearer(token)
	objects := func() map[string][]byte {
		list, err := bucket.ListBucket(s3.Bucket, nil, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		for _, o := range list.Contents {
			obj, err := bucket.GetObject(s3.Bucket, o.Key, nil)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(obj.Contents)
			obj.Contents.Close()
			out[o.Key] = data
		}
		return out
	}
	db := dbtest.Open(t, setting)
	checks := func() []string {
		rows, err := db.Read().Query("SELECT payload FROM jobs WHERE kind = $1 AND state = 'available' ORDER BY id", messaging.PhotoCheckJob)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var p string
			rows.Scan(&p)
			out = append(out, p)
		}
		return out
	}

	w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(auth, "Idempotency-Key", "t1")...)
	res, m := w.send(t, token, contact, "p1", map[string]string{"text": "Mira a tu sobrina"}, mediatest.PhoneJPEG(300, 200))
	if res.StatusCode != 201 {
		t.Fatalf("a message with a photo: %d %s", res.StatusCode, res.Raw)
	}
	// A send that fails after its photo was stored (here its key turns out, in the
	// transaction, to belong to another message): the photo goes at once, and its
	// check stays queued, naming it.
	if res, _ := w.send(t, token, contact, "p1", map[string]string{"text": "Otra cosa"}, mediatest.PhoneJPEG(300, 200)); res.StatusCode != 409 || len(objects()) != 1 {
		t.Fatalf("a refused send: %d %s; objects %d", res.StatusCode, res.Raw, len(objects()))
	}
	if c := checks(); len(c) != 1 || !strings.Contains(c[0], `"keys":["`) {
		t.Fatalf("checks after a refused send: %q", c)
	}
	stored := objects()
	if len(stored) != 1 {
		t.Fatalf("objects in the bucket: %d", len(stored))
	}
	var name string
	var data []byte
	for name, data = range stored {
	}
	if !strings.HasPrefix(name, s3.Prefix) || !strings.HasPrefix(string(data), "\xff\xd8") {
		t.Errorf("object %q (%d bytes)", name, len(data))
	}
	if c := checks(); len(c) != 1 || strings.Contains(c[0], strings.TrimPrefix(name, s3.Prefix)) {
		t.Errorf("the stored message did not withdraw its photo check: %q", c)
	}
	got := w.Do(t, "GET", m["photos"].([]any)[0].(string), nil, auth...)
	if body := apptest.Body(t, got); got.StatusCode != 200 || body != string(data) {
		t.Errorf("the photo read back: %d, %d bytes of %d", got.StatusCode, len(body), len(data))
	}
	if _, err := os.Stat(filepath.Join(w.Env["KINLINK_DATA_DIR"], "media")); !os.IsNotExist(err) {
		t.Errorf("a media folder was made on disk: %v", err)
	}

	// A photo left behind with its check, as after a crash; a check naming the sent
	// photo too (a check runs at least once, perhaps twice); then every check is due.
	orphan := ids.New()
	bucket.PutObject(s3.Bucket, s3.Prefix+orphan, nil, bytes.NewReader([]byte("half a send")), 11, nil)
	if err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		_, err := jobs.Enqueue(context.Background(), db, tx, messaging.PhotoCheckJob, map[string][]string{"keys": {orphan, strings.TrimPrefix(name, s3.Prefix)}}, jobs.EnqueueOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Write().Exec("UPDATE jobs SET run_after = $1 WHERE kind = $2", time.Now().UTC(), messaging.PhotoCheckJob)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var waiting int
		db.Read().QueryRow("SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state <> 'succeeded'", messaging.PhotoCheckJob).Scan(&waiting)
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d photo checks did not run", waiting)
		}
	}
	after := objects()
	if _, ok := after[s3.Prefix+orphan]; ok {
		t.Error("the photo no message holds is still in the bucket")
	}
	if _, ok := after[name]; !ok || len(after) != 1 {
		t.Errorf("the sent photo after the checks: %d objects", len(after))
	}
}
