package httpx_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/problem"
)

// Every kind of refusal answers with its own status, and a failure with 500.
func TestEveryKindHasItsStatus(t *testing.T) {
	want := map[problem.Kind]int{
		problem.Internal: 500, problem.Invalid: 400, problem.Unauthenticated: 401, problem.Payment: 402,
		problem.Forbidden: 403, problem.NotFound: 404, problem.Conflict: 409, problem.TooLarge: 413,
		problem.Unsupported: 415, problem.Locked: 423, problem.RateLimited: 429, problem.Upstream: 502,
		problem.Unavailable: 503,
	}
	for kind := problem.Internal; kind <= problem.Unavailable; kind++ {
		if got := httpx.Status(problem.Declare(kind, "x", "x")); got != want[kind] {
			t.Errorf("kind %d answers %d, want %d", kind, got, want[kind])
		}
	}
	if got := httpx.Status(problem.Declare(problem.Unavailable+1, "x", "x")); got != 500 {
		t.Errorf("an unknown kind answers %d, want 500", got)
	}
}

// A refusal returned with its details (a limit, a wait, other fields) is still the
// refusal it was declared as, also when wrapped; another with the same code is not.
func TestCopiesAreTheirDeclaration(t *testing.T) {
	tooLong := problem.Declare(problem.Invalid, "invalid_request", "too long").On("text", "too_long").Say("conversation.too_long")
	empty := problem.Declare(problem.Invalid, "invalid_request", "empty").On("text", "required")
	copies := []error{tooLong.With("1000"), tooLong.After(time.Minute), tooLong.WithFields(map[string]string{"note": "x"}),
		fmt.Errorf("messaging: send: %w", tooLong.With("1000"))}
	for _, err := range copies {
		if !errors.Is(err, tooLong) || errors.Is(err, empty) {
			t.Errorf("%v: is tooLong %t, is empty %t", err, errors.Is(err, tooLong), errors.Is(err, empty))
		}
		if p, ok := problem.As(err); !ok || p.Code != "invalid_request" {
			t.Errorf("%v: not found as a refusal", err)
		}
	}
	if c := tooLong.WithFields(map[string]string{"note": "x"}); tooLong.Fields["text"] != "too_long" || len(tooLong.Fields) != 1 || c.Fields["note"] != "x" {
		t.Errorf("a copy changed its declaration: %v", tooLong.Fields)
	}
	if _, ok := problem.As(errors.New("disk full")); ok {
		t.Error("a failure was taken for a refusal")
	}
}

// A refusal of a type with details says which refusal it is.
type photoRefused struct{ n int }

func (e photoRefused) Error() string { return "photo " + strconv.Itoa(e.n) }
func (e photoRefused) Problem() *problem.Error {
	return problem.Declare(problem.TooLarge, "photo_too_large", "photo").With(e.n)
}

func TestTypedRefusals(t *testing.T) {
	p, ok := problem.As(fmt.Errorf("send: %w", photoRefused{n: 2}))
	if !ok || p.Code != "photo_too_large" || httpx.Status(p) != 413 || p.Args[0] != 2 {
		t.Fatalf("typed refusal: %v %v", p, ok)
	}
}

// A wait is said in minutes a person plans with, and sent as Retry-After in seconds.
func TestWaitsAreSaid(t *testing.T) {
	cat, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	limited := problem.Declare(problem.RateLimited, "too_many_attempts", "limited")
	for wait, want := range map[time.Duration]string{
		30 * time.Second: cat.T("en", "form.too_many_one"),
		90 * time.Second: cat.T("en", "form.too_many", 2),
		30 * time.Hour:   cat.T("en", "form.too_many_reset"),
	} {
		if got := httpx.Say(cat, "en", limited.After(wait)); got != want {
			t.Errorf("a wait of %v says %q, want %q", wait, got, want)
		}
	}
	w := httptest.NewRecorder()
	httpx.Refusing(w, limited.After(90*time.Second+time.Millisecond))
	if got := w.Header().Get("Retry-After"); got != "91" {
		t.Errorf("Retry-After %q, want 91", got)
	}
	if got := httpx.Say(cat, "es", problem.Declare(problem.NotFound, "not_found", "x")); got != cat.T("es", "api.error.not_found") {
		t.Errorf("a refusal without words of its own says %q", got)
	}
}

// A duration a message quotes is said in words, rounded up to the minute, and the
// tries left of a counted secret follow the message (issue 13, item 24).
func TestDurationsAndTriesLeftAreSaid(t *testing.T) {
	cat, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[time.Duration]string{
		23*time.Hour + 39*time.Minute + 10*time.Second: "23 hours and 40 minutes",
		24 * time.Hour:          "24 hours",
		time.Hour + time.Minute: "1 hour and 1 minute",
		5 * time.Second:         "1 minute",
		59 * time.Minute:        "59 minutes",
	} {
		if got := cat.Duration("en", d); got != want {
			t.Errorf("%v says %q, want %q", d, got, want)
		}
	}
	if got := cat.Duration("es", 2*time.Hour+time.Minute); got != "2 horas y 1 minuto" {
		t.Errorf("in Spanish: %q", got)
	}
	notYet := problem.Declare(problem.Conflict, "reset_wait_not_over", "x").Say("forgot.wait.not_over")
	if got, want := httpx.Say(cat, "en", notYet.With(90*time.Minute)), cat.T("en", "forgot.wait.not_over", "1 hour and 30 minutes"); got != want {
		t.Errorf("a quoted duration says %q, want %q", got, want)
	}
	wrong := problem.Declare(problem.Invalid, "invalid_answer", "x")
	for n, want := range map[int]string{2: "You have 2 more tries", 1: "You have 1 more try", 0: "No tries are left"} {
		if got := httpx.Say(cat, "en", wrong.Left(n)); !strings.HasPrefix(got, cat.T("en", "api.error.invalid_answer")+" "+want) {
			t.Errorf("%d left says %q", n, got)
		}
	}
	if got := httpx.Say(cat, "en", wrong); got != cat.T("en", "api.error.invalid_answer") {
		t.Errorf("a refusal that counts nothing says %q", got)
	}
}

// Every refusal the domain declares is worded in every language: its own message,
// or its code's.
func TestEveryRefusalIsWorded(t *testing.T) {
	cat, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				for _, value := range spec.(*ast.ValueSpec).Values {
					code, kind, key := declaration(value)
					if code == "" {
						continue
					}
					declared++
					if key == "" {
						if kind == "RateLimited" { // worded by its wait (httpx.Say)
							continue
						}
						key = "api.error." + code
					}
					for _, lang := range i18n.Supported() {
						if cat.T(lang, key) == key {
							t.Errorf("%s: the refusal %q has no words in %s (%s)", path, code, lang, key)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if declared < 40 {
		t.Fatalf("found only %d declared refusals: is the walk looking in the right place?", declared)
	}
}

// declaration reads a problem.Declare(problem.Kind, "code", …)….Say("key") chain.
func declaration(e ast.Expr) (code, kind, key string) {
	ast.Inspect(e, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		switch {
		case sel.Sel.Name == "Say" && len(call.Args) == 1:
			if lit, ok := call.Args[0].(*ast.BasicLit); ok {
				key, _ = strconv.Unquote(lit.Value)
			}
		case sel.Sel.Name == "Declare" && len(call.Args) == 3:
			if k, ok := call.Args[0].(*ast.SelectorExpr); ok {
				kind = k.Sel.Name
			}
			if lit, ok := call.Args[1].(*ast.BasicLit); ok {
				code, _ = strconv.Unquote(lit.Value)
			}
		}
		return true
	})
	return code, kind, key
}

// A route table registers every route and knows which take more than the default.
func TestRouteTable(t *testing.T) {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }
	public := func(h http.HandlerFunc) http.HandlerFunc { return h }
	wrapped := 0
	routes := httpx.Register(mux, func(h http.HandlerFunc) http.Handler { wrapped++; return h }, []httpx.Route{
		httpx.On("POST /things/{id}/photos", public, ok).Taking(50 << 20),
		httpx.On("GET /things", public, ok),
		httpx.On("GET /file", nil, ok),
	})
	if wrapped != 2 {
		t.Errorf("%d routes wrapped, want the 2 with an access", wrapped)
	}
	for path, want := range map[string]int64{"/things/7/photos": 50 << 20, "/things": 0, "/nowhere": 0} {
		method := "GET"
		if strings.HasSuffix(path, "photos") {
			method = "POST"
		}
		if got := routes.BodyLimit(httptest.NewRequest(method, path, nil)); got != want {
			t.Errorf("%s %s takes %d, want %d", method, path, got, want)
		}
	}
	// The limit belongs to the route, not the path: another method of it has none.
	if got := routes.BodyLimit(httptest.NewRequest("GET", "/things/7/photos", nil)); got != 0 {
		t.Errorf("GET of an upload route takes %d", got)
	}
}
