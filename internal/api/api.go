// Package api serves the JSON API for the mobile apps at /api/v1, documented by the
// OpenAPI document at /api/v1/openapi.json. Handlers call the same domain services as
// the web pages. Every 4xx and 5xx answer under /api/ has one shape:
// {"error": {"code": "<stable_code>", "message": "<text in the request's language>"}}.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/instances"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/videogram"
	"github.com/kinlink/kinlink/internal/visits"
)

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument is the API's contract.
func OpenAPIDocument() []byte { return openAPIDocument }

// API holds the handlers' dependencies.
type API struct {
	identity *identity.Service
	facility *facility.Service
	contacts *contacts.Service
	wallets  *ledger.Wallets
	deposits *deposits.Service
	webhooks Webhooks
	messages *messaging.Service
	// uploads takes clips in pieces (tus); videograms is nil where the server
	// cannot convert clips.
	uploads    *httpx.Resumable
	maxUpload  int64
	videograms *videogram.Service
	visits     *visits.Service // nil where video visits are not offered
	instances  *instances.Registry
	cat        *i18n.Catalog
	log        *slog.Logger
	mux        *http.ServeMux
	table      *httpx.Routes
}

// Deps are the services the API calls.
type Deps struct {
	Catalog  *i18n.Catalog
	Log      *slog.Logger
	Identity *identity.Service
	Facility *facility.Service
	Contacts *contacts.Service
	Wallets  *ledger.Wallets
	Messages *messaging.Service
	// Uploads and VideoGrams are for VideoGrams; BaseURL makes the addresses of
	// uploads absolute, as the tus protocol hands them back.
	Uploads *media.Uploads
	// UploadLocks are shared with the web's resumable uploads.
	UploadLocks *httpx.UploadLocks
	VideoGrams  *videogram.Service
	// Deposits are deposits to residents' trust accounts.
	Deposits *deposits.Service
	// Webhooks verifies the payment processor's event notifications (nil: the
	// sandbox, which reports its events itself).
	Webhooks Webhooks
	// Visits turns the video visit endpoints on (nil: not offered).
	Visits *visits.Service
	// Instances passes a visit's signalling on to the instance holding its room
	// (nil: this server is the only one).
	Instances *instances.Registry
	BaseURL   string
}

// New builds the API.
func New(d Deps) (*API, error) {
	a := &API{identity: d.Identity, facility: d.Facility, contacts: d.Contacts, wallets: d.Wallets, deposits: d.Deposits, webhooks: d.Webhooks, messages: d.Messages, visits: d.Visits, instances: d.Instances, cat: d.Catalog, log: d.Log, mux: http.NewServeMux()}
	if d.Uploads != nil && d.VideoGrams != nil { // uploads are for VideoGrams only
		up, err := httpx.NewResumable(d.Uploads, d.UploadLocks, strings.TrimSuffix(d.BaseURL, "/")+"/api/v1/uploads/",
			func(ctx context.Context) string { return ctx.Value(authKey{}).(authInfo).account.ID }, a.fail)
		if err != nil {
			return nil, err
		}
		a.uploads, a.maxUpload, a.videograms = up, d.Uploads.MaxBytes(), d.VideoGrams
	}
	a.table = httpx.Register(a.mux, nil, a.routes())
	return a, nil
}

// Routes mounts the API under /api/ on mux.
func (a *API) Routes(mux *http.ServeMux) { mux.Handle("/api/", a.mux) }

// openAPI serves the API's contract.
func (a *API) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDocument)
}

// unmatched answers 405 for a known path with another method, else 404, in JSON.
func (a *API) unmatched(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := a.mux.Handler(probe); pattern != "/api/" && pattern != "" {
			allowed = append(allowed, method)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		a.Error(w, r, http.StatusMethodNotAllowed, "method_not_allowed")
		return
	}
	a.Error(w, r, http.StatusNotFound, "not_found")
}

// lang is the request's language for messages.
func (a *API) lang(r *http.Request) string {
	return a.cat.Negotiate("", r.Header.Get("Accept-Language"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ErrorBody is the shape of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error itself.
type ErrorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Reasons []string          `json:"reasons,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
	// AttemptsLeft is how many more tries the step has before it locks, where they
	// are counted (a security answer).
	AttemptsLeft *int `json:"attempts_left,omitempty"`
}

// Error writes an error answer with the message of code in the request's language.
func (a *API) Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	a.errorWith(w, r, status, ErrorDetail{Code: code})
}

func (a *API) errorWith(w http.ResponseWriter, r *http.Request, status int, d ErrorDetail) {
	d.Message = a.cat.T(a.lang(r), "api.error."+d.Code)
	writeJSON(w, status, ErrorBody{Error: d})
}

// StatusError renders the error answers the shared middleware produces (cross-origin
// refusal, body too large, panics) for paths under /api/.
func (a *API) StatusError(w http.ResponseWriter, r *http.Request, status int) {
	code := map[int]string{
		http.StatusBadRequest:            "invalid_characters", // httpx.CleanInput
		http.StatusForbidden:             "cross_origin_request",
		http.StatusRequestEntityTooLarge: "payload_too_large",
		http.StatusNotFound:              "not_found",
	}[status]
	if code == "" {
		code = "internal_error"
	}
	a.Error(w, r, status, code)
}

// fail answers an error: a refusal with its status, code, fields and message, from
// the table every surface shares (httpx.Status, httpx.Say); anything else is a
// failure, logged once here and answered 500.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	p, ok := problem.As(err)
	if !ok {
		if errors.Is(err, context.Canceled) {
			return
		}
		a.log.Error("api: request failed", "path", r.URL.Path, "request_id", httpx.RequestID(r.Context()), "err", err)
		a.Error(w, r, http.StatusInternalServerError, "internal_error")
		return
	}
	httpx.Refusing(w, p)
	if p.Kind == problem.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kinlink"`)
	}
	writeJSON(w, httpx.Status(p), ErrorBody{Error: ErrorDetail{Code: p.Code, Message: httpx.Say(a.cat, a.lang(r), p), Fields: p.Fields, Reasons: p.Reasons,
		AttemptsLeft: p.AttemptsLeft}})
}

// decode reads a JSON object body into v; a bad body is a 400 invalid_request.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		a.Error(w, r, http.StatusRequestEntityTooLarge, "payload_too_large")
		return false
	}
	// JSON may spell NUL as \u0000; no field of ours takes it, and the database
	// refuses it.
	if err != nil || bytes.Contains(body, []byte(`\u0000`)) {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"body": "invalid_json"}})
		return false
	}
	// What no person types is refused here as the web's forms refuse it
	// (httpx.CleanInput): control characters, however JSON spells them, and bytes
	// that are not UTF-8, which JSON decoding would quietly replace.
	if field, clean := cleanJSON(body); !clean {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_characters", Fields: map[string]string{field: "invalid_characters"}})
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		// Valid JSON with a value of the wrong type names its field ("amount_cents":
		// "ten" is not a number), not the body.
		var wrongType *json.UnmarshalTypeError
		if errors.As(err, &wrongType) && wrongType.Field != "" {
			a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{wrongType.Field: "wrong_type"}})
			return false
		}
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"body": "invalid_json"}})
		return false
	}
	return true
}

// cleanJSON reports whether every string of a JSON body (keys too) is clean text,
// and if not, the top-level field holding the first that is not ("body" for the
// body itself). A body that is not JSON passes: decoding reports it.
func cleanJSON(body []byte) (field string, clean bool) {
	if !utf8.Valid(body) {
		return "body", false
	}
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return "", true
	}
	var ok func(v any) bool
	ok = func(v any) bool {
		switch v := v.(type) {
		case string:
			return httpx.CleanText(v)
		case []any:
			for _, e := range v {
				if !ok(e) {
					return false
				}
			}
		case map[string]any:
			for k, e := range v {
				if !httpx.CleanText(k) || !ok(e) {
					return false
				}
			}
		}
		return true
	}
	if top, isObject := doc.(map[string]any); isObject {
		for k, v := range top {
			if !httpx.CleanText(k) || !ok(v) {
				return k, false
			}
		}
		return "", true
	}
	return "body", ok(doc)
}

// maxKeyLength is the longest Idempotency-Key taken, as the OpenAPI document says.
const maxKeyLength = 150

// idempotencyKey is the request's Idempotency-Key header, or an error answer when it
// is too long or holds anything but visible ASCII (a UUID or any token an app makes).
// No key is fine: the request is then new each time.
func (a *API) idempotencyKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.Header.Get("Idempotency-Key")
	why := ""
	if len(key) > maxKeyLength {
		why = "too_long"
	}
	for i := 0; i < len(key) && why == ""; i++ {
		if key[i] <= ' ' || key[i] > '~' {
			why = "invalid"
		}
	}
	if why != "" {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_idempotency_key", Fields: map[string]string{"Idempotency-Key": why}})
		return "", false
	}
	return key, true
}

func client(r *http.Request) identity.Client {
	return identity.Client{IP: httpx.ClientIP(r.Context()), UserAgent: r.UserAgent()}
}

type authKey struct{}

type authInfo struct {
	account identity.Account
	session identity.Session
	token   string
}

// authenticated requires a live API token: Authorization: Bearer <token>.
func (a *API) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			a.fail(w, r, identity.ErrUnauthenticated)
			return
		}
		acct, sess, err := a.identity.Authenticate(r.Context(), strings.TrimSpace(token), identity.APISession)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), authKey{}, authInfo{acct, sess, strings.TrimSpace(token)})))
	}
}

func auth(r *http.Request) authInfo { return r.Context().Value(authKey{}).(authInfo) }

// rfc3339 formats times for the API.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
