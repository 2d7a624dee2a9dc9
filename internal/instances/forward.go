package instances

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// Refusals of Forward, before anything is sent.
var (
	// ErrLoop is a request another instance forwarded here, that this one would
	// forward again: the instances disagree on where the room is (a takeover
	// under way), and the client tries again.
	ErrLoop = errors.New("instances: a forwarded request would be forwarded again")
	// ErrSelf is an owner whose address is this instance's own: two instances
	// registered at one URL (KINLINK_INSTANCE_URL).
	ErrSelf = errors.New("instances: the owner's address is this instance's own")
)

// transport reaches other instances: it dials quickly, and a WebSocket it carries
// is not held to any timeout once upgraded.
var transport = &http.Transport{
	Proxy:                 nil, // instances reach each other directly, never through HTTP_PROXY
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   5 * time.Second,
	ResponseHeaderTimeout: 15 * time.Second,
	MaxIdleConnsPerHost:   4,
	IdleConnTimeout:       90 * time.Second,
}

// Forward passes r, as it came, to the instance at owner (its internal URL), and
// answers with whatever that instance answers: an upgrade to a WebSocket, carried
// both ways until either side closes, or a refusal. Host, Origin, the cookie and
// the bearer token go unchanged, so the owner authenticates the participant itself
// from the shared database and checks the origin against the host the client
// asked for: no instance trusts another with who is asking. The hop header says
// which instance forwarded it.
//
// Nothing is sent, and refuse answers instead, when r was itself forwarded by an
// instance (ErrLoop), when owner is this instance's own address (ErrSelf), and
// when the owner cannot be reached.
func (r *Registry) Forward(w http.ResponseWriter, req *http.Request, owner string, refuse func(http.ResponseWriter, *http.Request, error)) {
	if by := r.ForwardedBy(req.Context(), req.Header.Get(HopHeader), req.Method, req.Host, req.URL.RequestURI()); by != "" {
		refuse(w, req, ErrLoop)
		return
	}
	target, err := url.Parse(owner)
	if err != nil || target.Host == "" {
		refuse(w, req, errors.New("instances: the owner's address is no URL: "+owner))
		return
	}
	if same(owner, r.url) {
		refuse(w, req, ErrSelf)
		return
	}
	// The hijacked connection would keep this server's read and write timeouts;
	// a visit lasts longer than a request.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			// The chain of addresses stays as it came, with the client this
			// instance saw added (believed by the owner only where it lists this
			// instance in KINLINK_TRUSTED_PROXIES).
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
				if v := pr.In.Header.Values(h); len(v) > 0 {
					pr.Out.Header[h] = v
				}
			}
			if host, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				if prior := pr.Out.Header.Get("X-Forwarded-For"); prior != "" {
					host = prior + ", " + host
				}
				pr.Out.Header.Set("X-Forwarded-For", host)
			}
			pr.Out.Header.Set(HopHeader, r.sign(pr.Out.Method, pr.Out.Host, pr.Out.URL.RequestURI()))
		},
		Transport: transport,
		ErrorLog:  slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			refuse(w, req, err)
		},
	}
	p.ServeHTTP(w, req)
}

// same reports whether two instance URLs name one address.
func same(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && ua.Host == ub.Host
}
