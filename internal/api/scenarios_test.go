package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// scenario is one request and what its caller must observe, so that the API's rules
// (who may call what, what each mistake is called) read as a table, in the style of
// PocketBase's ApiScenario.
type scenario struct {
	name   string
	who    string // a caller of the run: "anonymous", "family A", "family B", "staff"...
	method string
	path   string // {name} is replaced by the run's value of name, such as {contact}

	json    any               // a JSON body,
	form    map[string]string // or a multipart form as the app sends messages ("photo" is a file),
	raw     string            // or a body sent as it is, with its headers
	headers []string

	status int
	code   string            // the error code; "" for an answer that is no error
	fields map[string]string // fields the error names, with what is wrong with each
	holds  string            // text the answer must hold
	absent string            // text the answer must not hold, such as another family's data
}

// scenarios runs tables against one server.
type scenarios struct {
	w      *world
	tokens map[string]string // who -> bearer token; a caller missing here sends none
	values map[string]string // path placeholders
}

func (s scenarios) expand(text string) string {
	for k, v := range s.values {
		text = strings.ReplaceAll(text, "{"+k+"}", v)
	}
	return text
}

func (s scenarios) run(t *testing.T, table []scenario) {
	t.Helper()
	for _, sc := range table {
		t.Run(sc.who+": "+sc.name, func(t *testing.T) { s.check(t, sc) })
	}
}

func (s scenarios) check(t *testing.T, sc scenario) {
	headers := append([]string(nil), sc.headers...)
	if token, ok := s.tokens[sc.who]; ok {
		headers = append(headers, "Authorization", "Bearer "+token)
	} else if sc.who != "anonymous" {
		t.Fatalf("no caller %q", sc.who)
	}
	var body io.Reader
	switch {
	case sc.json != nil:
		b, err := json.Marshal(sc.json)
		if err != nil {
			t.Fatal(err)
		}
		body = strings.NewReader(s.expand(string(b)))
		headers = append(headers, "Content-Type", "application/json")
	case sc.form != nil:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range sc.form {
			if k == "photo" {
				fw, _ := mw.CreateFormFile("photos", "photo.jpg")
				fw.Write([]byte(v))
			} else {
				mw.WriteField(k, v)
			}
		}
		mw.Close()
		body = &buf
		headers = append(headers, "Content-Type", mw.FormDataContentType())
	case sc.raw != "":
		body = strings.NewReader(sc.raw)
	}
	res := s.w.Do(t, sc.method, s.expand(sc.path), body, headers...)
	out := &apptest.Response{Response: res, Raw: apptest.Body(t, res)}
	if s.w.OnResponse != nil {
		s.w.OnResponse(t, res.Request, out)
	}

	shown := out.Raw
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/") {
		shown = fmt.Sprintf("(%d bytes of %s)", len(out.Raw), ct)
	}
	if res.StatusCode != sc.status {
		t.Errorf("status %d, want %d: %.300s", res.StatusCode, sc.status, shown)
	}
	if holds := s.expand(sc.holds); holds != "" && !strings.Contains(out.Raw, holds) {
		t.Errorf("the answer lacks %q: %.300s", holds, shown)
	}
	if absent := s.expand(sc.absent); absent != "" && strings.Contains(out.Raw, absent) {
		t.Errorf("the answer holds %q: %.300s", absent, shown)
	}
	if sc.code == "" {
		return
	}
	// Every error is the same JSON shape, with a message for people.
	var e struct {
		Error struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Fields  map[string]string `json:"fields"`
		} `json:"error"`
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(out.Raw), &e) != nil {
		t.Fatalf("an error that is not JSON: %s %.300s", res.Header.Get("Content-Type"), shown)
	}
	if e.Error.Code != sc.code || e.Error.Message == "" {
		t.Errorf("error %q (message %q), want %q", e.Error.Code, e.Error.Message, sc.code)
	}
	for field, want := range sc.fields {
		if got := e.Error.Fields[field]; got != want {
			t.Errorf("field %s: %q, want %q (%v)", field, got, want, e.Error.Fields)
		}
	}
	if sc.code == "unauthenticated" && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("a 401 without a Bearer challenge: %q", res.Header.Get("WWW-Authenticate"))
	}
}

// staffToken makes a roster-sync token for an administrator of the agency, as the
// portal's Roster page would (the portal itself is tested in internal/web).
func staffToken(t *testing.T, w *world, agencyCode string) string {
	t.Helper()
	ctx := context.Background()
	db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
	log := slog.New(slog.DiscardHandler)
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewService(ctx, db, identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 1, 4, time.Second), common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	fac := facility.NewService(db, id, log)
	agency, err := fac.AgencyByCode(ctx, agencyCode)
	if err != nil {
		t.Fatal(err)
	}
	accountID, err := id.EnsureStaff(ctx, "records@example.org", "Records Office", "staff pass 42!", "JBSWY3DPEHPK3PXP")
	if err != nil {
		t.Fatal(err)
	}
	if err := fac.GrantRole(ctx, facility.Operator, agency.ID, accountID, facility.AgencyAdmin, ""); err != nil {
		t.Fatal(err)
	}
	sess, err := id.CreateStaffToken(ctx, accountID, "staff pass 42!", "OMS nightly", identity.Client{})
	if err != nil {
		t.Fatal(err)
	}
	return sess.Token
}

// Who may call what: every route but sign-up and login needs a family's token, the
// roster needs a staff token and nothing else does, and one family reaches nothing of
// another's — not even whether it exists.
func TestWhoMayCallWhat(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		tokenA, contact := contactOfJose(t, w)
		tokenB := w.register(t, "ben@example.org")
		w.JSON(t, "POST", "/api/v1/wallet/top-ups", map[string]any{"amount_cents": 500, "payment_token": "tok_visa"}, append(bearer(tokenA), "Idempotency-Key", "t1")...)
		if res, _ := w.send(t, tokenA, contact, "m1", map[string]string{"text": "Hola José, te extrañamos"}, nil); res.StatusCode != 201 {
			t.Fatalf("a message: %d %s", res.StatusCode, res.Raw)
		}
		res, m := w.send(t, tokenA, contact, "m2", map[string]string{"text": "Mira a tu sobrina"}, mediatest.PhoneJPEG(300, 200))
		if res.StatusCode != 201 {
			t.Fatalf("a message with a photo: %d %s", res.StatusCode, res.Raw)
		}
		s := scenarios{w: w,
			tokens: map[string]string{"family A": tokenA, "family B": tokenB, "staff": staffToken(t, w, "FLDOC"), "a made-up token": "nope"},
			values: map[string]string{"contact": contact, "photo": m["photos"].([]any)[0].(string), "unknown": ids.New()},
		}

		// Every route behind a token refuses callers without one, or with a made-up one.
		var table []scenario
		for _, route := range []struct{ method, path string }{
			{"GET", "/api/v1/me"}, {"POST", "/api/v1/logout"}, {"GET", "/api/v1/agencies"},
			{"GET", "/api/v1/residents?agency=FLDOC&resident_id=A100"}, {"POST", "/api/v1/contacts"}, {"GET", "/api/v1/contacts"},
			{"GET", "/api/v1/contacts/{contact}/messages"}, {"POST", "/api/v1/contacts/{contact}/messages"},
			{"POST", "/api/v1/contacts/{contact}/messages/read"}, {"GET", "/api/v1/contacts/{contact}/messages/quote"},
			{"GET", "{photo}"}, {"GET", "/api/v1/wallet"}, {"POST", "/api/v1/wallet/top-ups"}, {"POST", "/api/v1/roster"},
		} {
			for _, who := range []string{"anonymous", "a made-up token"} {
				table = append(table, scenario{name: route.method + " " + route.path, who: who, method: route.method, path: route.path,
					status: 401, code: "unauthenticated", absent: "Hola"})
			}
		}
		s.run(t, table)

		s.run(t, []scenario{
			// A staff token is for the roster only; a family token is not for the roster.
			{name: "a family's profile", who: "staff", method: "GET", path: "/api/v1/me", status: 401, code: "unauthenticated"},
			{name: "a family's contacts", who: "staff", method: "GET", path: "/api/v1/contacts", status: 401, code: "unauthenticated"},
			{name: "a conversation", who: "staff", method: "GET", path: "/api/v1/contacts/{contact}/messages", status: 401, code: "unauthenticated", absent: "Hola"},
			{name: "a wallet", who: "staff", method: "GET", path: "/api/v1/wallet", status: 401, code: "unauthenticated"},
			{name: "the roster", who: "family A", method: "POST", path: "/api/v1/roster", raw: "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n",
				headers: []string{"Content-Type", "text/csv"}, status: 401, code: "unauthenticated"},
			{name: "a roster dry run", who: "staff", method: "POST", path: "/api/v1/roster", raw: "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\nA100,García,José,FSP,B-12,active,\n",
				headers: []string{"Content-Type", "text/csv"}, status: 200, holds: `"applied":false`},

			// Family B reaches nothing of family A's: the answer is the one for a
			// contact or photo that does not exist (property 33).
			{name: "A's conversation", who: "family B", method: "GET", path: "/api/v1/contacts/{contact}/messages", status: 404, code: "not_found", absent: "Hola"},
			{name: "a message to A's contact", who: "family B", method: "POST", path: "/api/v1/contacts/{contact}/messages", form: map[string]string{"text": "hi"}, status: 404, code: "not_found"},
			{name: "marking A's replies read", who: "family B", method: "POST", path: "/api/v1/contacts/{contact}/messages/read", status: 404, code: "not_found"},
			{name: "the price of writing to A's contact", who: "family B", method: "GET", path: "/api/v1/contacts/{contact}/messages/quote", status: 404, code: "not_found"},
			{name: "A's photo", who: "family B", method: "GET", path: "{photo}", status: 404, code: "not_found"},
			{name: "B's own contacts", who: "family B", method: "GET", path: "/api/v1/contacts", status: 200, holds: `"contacts":[]`, absent: "{contact}"},
			{name: "A's own contacts", who: "family A", method: "GET", path: "/api/v1/contacts", status: 200, holds: "{contact}"},
			{name: "A's own conversation", who: "family A", method: "GET", path: "/api/v1/contacts/{contact}/messages", status: 200, holds: "Hola José"},
			{name: "marking A's own replies read", who: "family A", method: "POST", path: "/api/v1/contacts/{contact}/messages/read", status: 204},
			{name: "A's own photo", who: "family A", method: "GET", path: "{photo}", status: 200, holds: "\xff\xd8"},

			// A contact or photo that is no one's is the same 404; a photo to it is
			// refused before the photo is looked at.
			{name: "the price of writing to no one", who: "family A", method: "GET", path: "/api/v1/contacts/{unknown}/messages/quote", status: 404, code: "not_found"},
			{name: "a photo to no one", who: "family A", method: "POST", path: "/api/v1/contacts/{unknown}/messages", form: map[string]string{"text": "Hola", "photo": "not an image"}, status: 404, code: "not_found"},
			{name: "a photo no one has", who: "family A", method: "GET", path: "/api/v1/photos/{unknown}", status: 404, code: "not_found"},
		})
	})
}

// What each mistake in a family's request is called, and which field it names.
func TestRequestMistakesAreNamed(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, nil)
	token, contact := contactOfJose(t, w)
	s := scenarios{w: w, tokens: map[string]string{"family": token}, values: map[string]string{"contact": contact, "unknown": ids.New()}}
	s.run(t, []scenario{
		{name: "a resident who does not exist", who: "family", method: "POST", path: "/api/v1/contacts", json: map[string]any{"resident": "{unknown}"},
			status: 400, code: "invalid_request", fields: map[string]string{"resident": "unknown"}},
		{name: "a resident id that is a number", who: "family", method: "POST", path: "/api/v1/contacts", json: map[string]any{"resident": 5},
			status: 400, code: "invalid_request", fields: map[string]string{"resident": "wrong_type"}},
		{name: "an agency that does not exist", who: "family", method: "GET", path: "/api/v1/residents?agency=NOPE&resident_id=A100",
			status: 400, code: "invalid_request", fields: map[string]string{"agency": "invalid"}},
		{name: "a search without an ID or a name", who: "family", method: "GET", path: "/api/v1/residents?agency=FLDOC",
			status: 400, code: "invalid_request", fields: map[string]string{"last_name": "required", "first_name": "required", "resident_id": "or_name"}},
		{name: "a last name alone", who: "family", method: "GET", path: "/api/v1/residents?agency=FLDOC&last_name=Garc%C3%ADa",
			status: 400, code: "invalid_request", fields: map[string]string{"first_name": "required"}},
		{name: "a page of no messages", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/messages?limit=0",
			status: 400, code: "invalid_request", fields: map[string]string{"limit": "range"}},
		{name: "a page of too many messages", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/messages?limit=101",
			status: 400, code: "invalid_request", fields: map[string]string{"limit": "range"}},
		{name: "a made-up cursor", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/messages?cursor=nonsense", status: 400},
		{name: "the quote of six photos", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/messages/quote?photos=6", status: 400},
		{name: "the quote of minus one photo", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/messages/quote?photos=-1", status: 400},
		{name: "the quote of 'two' photos", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/messages/quote?photos=two", status: 400},
		{name: "the quote of a 'maybe' prepaid reply", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/messages/quote?prepaid_reply=maybe", status: 400},
		{name: "a message as JSON", who: "family", method: "POST", path: "/api/v1/contacts/{contact}/messages", json: map[string]any{"text": "json"}, status: 415},
		{name: "a found resident", who: "family", method: "GET", path: "/api/v1/residents?agency=FLDOC&last_name=garcia&first_name=J", status: 200, holds: `"resident_id":"A100"`},
	})
}
