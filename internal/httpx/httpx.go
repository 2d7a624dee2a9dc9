// Package httpx holds the HTTP middleware every Kinlink surface shares: request ids,
// the access log, panic recovery, security headers, cross-origin refusal, body limits
// and request metrics.
package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies middleware so that the first listed runs first.
func Chain(h http.Handler, mw ...Middleware) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the id of the request being served, for logs and error pages.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithRequestID gives every request a fresh random id, in its context and in the
// X-Request-Id response header. An incoming X-Request-Id is not trusted: a client
// could use it to forge or collide log lines.
func WithRequestID() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := make([]byte, 8)
			rand.Read(b)
			id := hex.EncodeToString(b)
			w.Header().Set("X-Request-Id", id)
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
		})
	}
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, deadlines).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Metrics are the HTTP metrics exported at /metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kinlink_http_requests_total", Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kinlink_http_request_duration_seconds", Help: "Time to serve HTTP requests, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// AccessLog logs one line per request and counts it in metrics. It logs the path
// without the query string: queries may carry codes and tokens that must never
// reach a log.
func AccessLog(log *slog.Logger, m *Metrics) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			elapsed := time.Since(start)
			// ServeMux records the matched pattern on the request; unmatched paths
			// share one label so that scanners cannot blow up the metric's cardinality.
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			m.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
			m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if sw.status >= 500 {
				level = slog.LevelError
			}
			log.LogAttrs(r.Context(), level, "http request",
				slog.String("request_id", RequestID(r.Context())),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.status),
				slog.Int64("bytes", sw.bytes),
				slog.Float64("ms", float64(elapsed.Microseconds())/1000),
				slog.String("remote", r.RemoteAddr),
			)
		})
	}
}

// Recover turns a panic in a handler into a 500 answer and one logged error with the
// stack, instead of a dropped connection.
func Recover(log *slog.Logger, render func(w http.ResponseWriter, r *http.Request, status int)) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic serving request", "request_id", RequestID(r.Context()), "path", r.URL.Path,
					"panic", p, "stack", string(debug.Stack()))
				render(w, r, http.StatusInternalServerError)
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// ContentSecurityPolicy allows only the server's own scripts, styles and images: no
// inline script or style, no eval, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'; manifest-src 'self'"

// CSP says what the Content-Security-Policy lets pages take from elsewhere. The zero
// value is ContentSecurityPolicy: the server's own, nothing else.
type CSP struct {
	// Stripe lets pages load Stripe.js and the frames of its Payment Element (the
	// card field, whose card numbers never touch this server) and reach Stripe's
	// API, with the hosts Stripe's security guide names. It is on when the payment
	// processor is Stripe.
	Stripe bool
}

// Stripe's hosts: Stripe.js and its frames, 3-D Secure's frames, the API.
const (
	stripeScripts = "https://js.stripe.com https://*.js.stripe.com"
	stripeFrames  = "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com"
	stripeAPI     = "https://api.stripe.com"
)

// Policy is the header's value. Stripe adds its hosts to script-src, connect-src
// and frame-src (framing 'self' stays allowed, as default-src allowed it) and to
// nothing else: still no inline script or style, no eval, no object.
func (c CSP) Policy() string {
	script, connect, frame := "'self'", "'self'", ""
	if c.Stripe {
		script += " " + stripeScripts
		connect += " " + stripeAPI
		frame = "frame-src 'self' " + stripeFrames + "; "
	}
	return "default-src 'self'; script-src " + script + "; style-src 'self'; img-src 'self' data: blob:; " +
		"media-src 'self' blob:; connect-src " + connect + "; " + frame + "font-src 'self'; object-src 'none'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'; manifest-src 'self'"
}

// SecurityHeaders sets the headers every response carries. hsts is on when users
// reach the server over HTTPS; csp says what pages may take from elsewhere.
func SecurityHeaders(hsts bool, csp CSP) Middleware {
	policy := csp.Policy()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", policy)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			h.Set("Permissions-Policy", "geolocation=(), payment=(), usb=()")
			if hsts {
				h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// CrossOrigin refuses state-changing requests (POST, PUT, PATCH, DELETE) that a browser
// marks as coming from another origin, using Fetch metadata (Go's
// CrossOriginProtection). Requests without browser headers, such as the mobile apps'
// bearer-token calls, pass; they carry no ambient cookie to abuse.
func CrossOrigin(deny func(w http.ResponseWriter, r *http.Request)) Middleware {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(deny))
	return cop.Handler
}

// LimitBody caps request bodies at n, or at what the request's route takes when its
// surface's route table says more (limitOf, 0 for the default): over it a request
// gets 413 before its body is read. A URL-encoded form carries no files, so it gets
// the default whatever its route takes: such a form is read whole before any
// handler runs (CleanInput), and must not be tens of megabytes.
func LimitBody(n int64, limitOf func(*http.Request) int64, render func(w http.ResponseWriter, r *http.Request, status int)) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			limit := n
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
				limit = max(n, limitOf(r))
			}
			if r.ContentLength > limit {
				w.Header().Set("Connection", "close")
				render(w, r, http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			next.ServeHTTP(w, r)
		})
	}
}

// CleanInput refuses requests whose path, query or form fields carry text no person
// types: invalid UTF-8 or control characters (NUL among them, which PostgreSQL
// refuses). They get 400 before any handler runs, instead of a database error.
func CleanInput(render func(w http.ResponseWriter, r *http.Request, status int)) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			bad := !CleanText(r.URL.Path)
			for _, vs := range r.URL.Query() {
				for _, v := range vs {
					bad = bad || !CleanText(v)
				}
			}
			// The media type is compared without its parameters: a form sent with
			// ";charset=UTF-8" is a form all the same.
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); !bad && mt == "application/x-www-form-urlencoded" {
				if err := r.ParseForm(); err == nil {
					for _, vs := range r.PostForm {
						for _, v := range vs {
							bad = bad || !CleanText(v)
						}
					}
				}
			}
			if bad {
				render(w, r, http.StatusBadRequest)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// CleanText allows tabs and line breaks (a message has paragraphs) but no other
// control character, and only valid UTF-8: text a person types.
func CleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}
