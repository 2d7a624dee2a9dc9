package httpx

import "net/http"

// Route is one route of a surface: its pattern, who may use it (Access wraps the
// handler with the surface's authentication; nil for a file that knows no one), and
// the largest body it takes when that is more than the server's default.
type Route struct {
	Pattern string
	Access  func(http.HandlerFunc) http.HandlerFunc
	Handler http.HandlerFunc
	Body    int64
}

// Routes is a surface's route table, registered on its mux.
type Routes struct {
	mux    *http.ServeMux
	limits map[string]int64 // by pattern, where larger than the default
}

// Register puts routes on mux; every route with an Access is also wrapped in
// around (the surface's own context, such as who is signed in), if given.
func Register(mux *http.ServeMux, around func(http.HandlerFunc) http.Handler, routes []Route) *Routes {
	t := &Routes{mux: mux, limits: map[string]int64{}}
	for _, rt := range routes {
		if rt.Body > 0 {
			t.limits[rt.Pattern] = rt.Body
		}
		switch {
		case rt.Access == nil:
			mux.HandleFunc(rt.Pattern, rt.Handler)
		case around != nil:
			mux.Handle(rt.Pattern, around(rt.Access(rt.Handler)))
		default:
			mux.HandleFunc(rt.Pattern, rt.Access(rt.Handler))
		}
	}
	return t
}

// BodyLimit is the largest body the route of r takes, when its route says more than
// the server's default (0 otherwise). It is for LimitBody, which runs before the
// request is routed.
func (t *Routes) BodyLimit(r *http.Request) int64 {
	if t == nil {
		return 0
	}
	_, pattern := t.mux.Handler(r)
	return t.limits[pattern]
}

// On is a route for pattern: who may use it (access) and what answers (h).
func On(pattern string, access func(http.HandlerFunc) http.HandlerFunc, h http.HandlerFunc) Route {
	return Route{Pattern: pattern, Access: access, Handler: h}
}

// Taking is the route taking bodies of up to n bytes, more than the default.
func (rt Route) Taking(n int64) Route {
	rt.Body = n
	return rt
}
