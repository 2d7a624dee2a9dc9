package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/problem"
)

// Refusals of the domain, answered on pages: every handler passes the error of its
// use case here instead of matching it itself. The status and the words come from
// the table the API uses too (httpx.Status, httpx.Say).

// apply takes a refusal into the form: the fields at fault marked, and the refusal's
// message where it has one; Retry-After where waiting helps. It returns the status
// to answer, and false for an error that is not a refusal (a failure: a 500).
func (s *Site) apply(w http.ResponseWriter, r *http.Request, f *Form, err error) (status int, ok bool) {
	p, ok := problem.As(err)
	if !ok {
		return 0, false
	}
	httpx.Refusing(w, p)
	f.Reasons = p.Reasons
	for field, code := range p.Fields {
		f.Errors[field] = code
	}
	// Fields explain themselves on the form; a refusal with words of its own, or
	// about no field, is said above it.
	if p.Message != "" || len(p.Fields) == 0 {
		f.Message = httpx.Say(s.cat, s.Lang(r), p)
	}
	return httpx.Status(p), true
}

// refuse answers an error of a form's use case. Something missing, or forbidden
// without words of its own, gets its page; another refusal shows the form again
// (again) with what was typed kept and the refusal on it; anything else is a
// failure, logged once and answered with a 500 page.
func (s *Site) refuse(w http.ResponseWriter, r *http.Request, f *Form, err error, again func(status int, f *Form)) {
	if p, ok := problem.As(err); ok && (p.Kind == problem.NotFound || p.Kind == problem.Forbidden && p.Message == "") {
		s.answer(w, r, err)
		return
	}
	status, ok := s.apply(w, r, f, err)
	if !ok {
		s.failed(w, r, err)
		return
	}
	again(status, f)
}

// answer answers an error where there is no form to show it on: a refusal gets the
// page of its status, anything else is a failure.
func (s *Site) answer(w http.ResponseWriter, r *http.Request, err error) {
	p, ok := problem.As(err)
	if !ok {
		s.failed(w, r, err)
		return
	}
	httpx.Refusing(w, p)
	status := httpx.Status(p)
	key, known := errorKeys[status]
	if known && p.Message == "" {
		s.Error(w, r, status)
		return
	}
	// A refusal with words of its own, or one the error pages do not word (a
	// conflict, a wait), says its own words.
	if !known {
		key = "badrequest"
	}
	s.errorPageSaying(w, r, status, key, httpx.Say(s.cat, s.Lang(r), p))
}

// failed answers an error that is not a refusal: logged once, a 500 page.
func (s *Site) failed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.log.Error("web: request failed", "path", r.URL.Path, "request_id", httpx.RequestID(r.Context()), "err", err)
	s.Error(w, r, http.StatusInternalServerError)
}

// fail renders a form's page again with its refusal (see refuse).
func (s *Site) fail(w http.ResponseWriter, r *http.Request, f *Form, err error, page, titleKey string, data func(*Form) any) {
	s.refuse(w, r, f, err, func(status int, f *Form) { s.render(w, r, status, page, titleKey, data(f)) })
}
