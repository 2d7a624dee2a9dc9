// Package web serves Kinlink's HTML: the public site now, and the family, kiosk and
// staff areas as they arrive. Templates and static files are embedded in the binary.
// Pages work without JavaScript.
package web

import (
	"bytes"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

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
	"github.com/kinlink/kinlink/internal/videogram"
	"github.com/kinlink/kinlink/internal/visits"
)

//go:embed templates static
var files embed.FS

// LangCookie remembers the language a person picked with the switch.
const LangCookie = "lang"

// Site renders pages.
type Site struct {
	cat            *i18n.Catalog
	log            *slog.Logger
	id             *identity.Service
	fac            *facility.Service
	contacts       *contacts.Service
	wallets        *ledger.Wallets
	deposits       *deposits.Service
	messages       *messaging.Service
	videograms     *videogram.Service  // nil where VideoGrams are not offered
	visits         *visits.Service     // nil where video visits are not offered
	instances      *instances.Registry // nil: the only instance
	uploads        *media.Uploads
	resumable      *httpx.Resumable // the family's resumable uploads; nil without VideoGrams
	kioskResumable *httpx.Resumable // residents' at kiosks (VideoGram replies)
	offers         facility.Offers
	pages          map[string]*template.Template
	secureCookies  bool
	table          *httpx.Routes
}

// Deps are the services the pages call.
type Deps struct {
	Catalog  *i18n.Catalog
	Log      *slog.Logger
	Identity *identity.Service
	Facility *facility.Service
	Contacts *contacts.Service
	Wallets  *ledger.Wallets
	Messages *messaging.Service
	// VideoGrams and Uploads turn the VideoGram pages on (both, or neither);
	// BaseURL is the server's public address, for the uploads' locations.
	VideoGrams *videogram.Service
	// Deposits are deposits to residents' trust accounts.
	Deposits *deposits.Service
	// Visits turns the video visit pages on (nil: not offered).
	Visits *visits.Service
	// Instances passes a visit's signalling on to the instance holding its room
	// (nil: this server is the only one).
	Instances *instances.Registry
	Uploads   *media.Uploads
	// UploadLocks are shared with the API's resumable uploads.
	UploadLocks *httpx.UploadLocks
	BaseURL     string
	// Offers are the services this server has (facility.Offered()): the public
	// pages and the portal describe only these.
	Offers facility.Offers
	// SecureCookies marks the language cookie Secure, for servers reached over HTTPS.
	SecureCookies bool
}

// New parses every page with the shared layout.
func New(d Deps) (*Site, error) {
	cat := d.Catalog
	s := &Site{cat: cat, log: d.Log, id: d.Identity, fac: d.Facility, contacts: d.Contacts, wallets: d.Wallets, deposits: d.Deposits, messages: d.Messages, offers: d.Offers, pages: map[string]*template.Template{}, secureCookies: d.SecureCookies, visits: d.Visits, instances: d.Instances}
	if d.VideoGrams != nil && d.Uploads != nil {
		s.videograms, s.uploads = d.VideoGrams, d.Uploads
		base := strings.TrimSuffix(d.BaseURL, "/")
		rs, err := httpx.NewResumable(d.Uploads, d.UploadLocks, base+"/uploads/", familyUploads, s.uploadFailed)
		if err != nil {
			return nil, err
		}
		ks, err := httpx.NewResumable(d.Uploads, d.UploadLocks, base+"/kiosk/uploads/", kioskUploads, s.uploadFailed)
		if err != nil {
			return nil, err
		}
		s.resumable, s.kioskResumable = rs, ks
	}
	funcs := template.FuncMap{
		"t":     cat.T,
		"field": func(f *Form, name string) string { return f.Values[name] },
		"fieldError": func(lang string, f *Form, name string) string {
			return f.errorText(cat, lang, name)
		},
		"dataURL": func(mime string, b []byte) template.URL {
			return template.URL("data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(b))
		},
		// when writes a moment as a <time> the page's script shows in the reader's own
		// time zone; without the script it reads in UTC.
		"when": func(lang string, t time.Time) template.HTML {
			return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `" data-local>` + template.HTMLEscapeString(formatTime(lang, t)) + `</time>`)
		},
		// onClock writes a moment on its own location's clock, with the zone: a visit
		// on its facility's clock.
		"onClock": i18n.Local,
		// stamps counts stamps in words: "1 stamp", "3 stamps".
		"stamps": func(lang string, n int) string {
			if n == 1 {
				return cat.T(lang, "stamps.one", n)
			}
			return cat.T(lang, "stamps.many", n)
		},
		"dollars": ledger.Dollars,
		// wallClock is a moment's time of day on its own location's clock: a visit's
		// start at its facility, "14:20".
		"wallClock": func(t time.Time) string { return t.Format("15:04") },
		// zoneName is the abbreviation of the zone a moment is shown in: "EST".
		"zoneName":  func(t time.Time) string { z, _ := t.Zone(); return z },
		"localTime": i18n.Local,
		"inc":       func(i int) int { return i + 1 },
		// clockLength writes a length as a player does: "19:58", "1:02:03".
		"clockLength": func(d time.Duration) string {
			secs := int(d.Round(time.Second) / time.Second)
			if secs >= 3600 {
				return fmt.Sprintf("%d:%02d:%02d", secs/3600, secs/60%60, secs%60)
			}
			return fmt.Sprintf("%d:%02d", secs/60, secs%60)
		},
		// visitReason words why a visit ended without one: the system's reasons in
		// the reader's language, a staff member's as they wrote it.
		"visitReason": func(lang, reason string) string {
			switch reason {
			case visits.ReasonReleased, visits.ReasonTransferred, visits.ReasonRestricted, visits.ReasonNotDecided, visits.ReasonNoOneJoined:
				return cat.T(lang, "portal.visits.reason."+reason)
			}
			return reason
		},
		// rateDollars writes a price a minute in mills as dollars: "$0.16".
		"rateDollars": visits.RateDollars,
		// input is one input of a form, with what was typed and what is wrong with it
		// (see the "input" template).
		"input": func(lang string, f *Form, name, label, kind string) FormInput {
			return FormInput{ID: strings.NewReplacer(".", "-", "_", "-").Replace(name), Name: name, Label: label, Kind: kind,
				Value: f.Values[name], Error: f.errorText(cat, lang, name)}
		},
		// posterHeight is the height of a clip's poster shown w pixels wide.
		"posterHeight": func(c videogram.Clip, w int) int { return w * c.Height / max(c.Width, 1) },
		"mb":           func(n int64) int64 { return n >> 20 },
		// clipView hands a clip to a template of its own, with the page's language.
		"clipView": func(lang string, c videogram.Clip) ClipView { return ClipView{Lang: lang, Clip: c} },
		// clipLength writes a clip's length as a player does: "0:05", "1:30".
		"clipLength": func(d time.Duration) string {
			sec := int((d + time.Second/2) / time.Second)
			return fmt.Sprintf("%d:%02d", sec/60, sec%60)
		},
		// waited says how long something has waited, in words a reviewer reads at a
		// glance: "8 min", "2 h 5 min", "3 d 4 h".
		"waited": func(lang string, d time.Duration) string {
			m := int(d.Minutes())
			switch {
			case m < 1:
				return cat.T(lang, "waited.moment")
			case m < 60:
				return cat.T(lang, "waited.minutes", m)
			case m < 24*60:
				return cat.T(lang, "waited.hours", m/60, m%60)
			}
			return cat.T(lang, "waited.days", m/(24*60), m/60%24)
		},
		// photoAlt names photo i (from 0) of n: "Photo 2 of 3".
		"photoAlt": func(lang string, i, n int) string { return cat.T(lang, "photo.alt", i+1, n) },
		// reason words a rejection's reason: the agency's own words, or the program's.
		"reason": func(lang, code string, w messaging.Wording) string {
			if w.English != "" {
				return w.In(lang)
			}
			return cat.T(lang, "reject."+code)
		},
		// rosterReason words why a roster row was not used; the code stays beside it
		// for whoever fixes the export.
		"rosterReason": func(lang, code string) string {
			if n, ok := strings.CutPrefix(code, "duplicate_of_line_"); ok {
				return cat.T(lang, "roster.reject.duplicate", n)
			}
			return cat.T(lang, "roster.reject."+code)
		},
		"device": func(lang, userAgent string) string {
			return describeDevice(func(k string) string { return cat.T(lang, k) }, userAgent, false)
		},
		"passwordField": func(lang string, f *Form, id, autocomplete string, min int) PasswordField {
			p := PasswordField{ID: id, Name: id, Autocomplete: autocomplete, Min: min,
				Show: cat.T(lang, "password.show"), Hide: cat.T(lang, "password.hide"), Error: f.errorText(cat, lang, id)}
			if min > 0 {
				p.Hint = cat.T(lang, "password.hint", min)
				p.More = cat.T(lang, "password.more")
				p.Enough = cat.T(lang, "password.enough")
			}
			return p
		},
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	// The layout and the partials every page may include are parsed with each page.
	shared := map[string]bool{"layout": true, "card_field": true}
	for _, file := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(file, "templates/"), ".html")
		if shared[name] {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/card_field.html", file)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return s, nil
}

// FormInput is one labelled input of a form as the "input" template writes it.
// Kind is "text", "number" (whole numbers), "decimal", "clock" (HH:MM) or
// "date".
type FormInput struct {
	ID, Name, Label, Kind string
	Value, Error, Hint    string
	MaxLength             int
}

// Hinted is the input with a hint under it, which its input refers to.
func (in FormInput) Hinted(hint string) FormInput { in.Hint = hint; return in }

// As is the input with an id of its own, where a page has several forms with
// an input of one name.
func (in FormInput) As(id string) FormInput { in.ID = id; return in }

// Max is the input with a length limit.
func (in FormInput) Max(n int) FormInput { in.MaxLength = n; return in }

// ClipView is a VideoGram's clip as a template shows it.
type ClipView struct {
	Lang string
	Clip videogram.Clip
}

// PasswordField is a password input with its show/hide toggle and its hint.
type PasswordField struct {
	ID, Name, Autocomplete string
	Min                    int
	Show, Hide             string
	Hint, More, Enough     string
	Error                  string
}

// LanguageLink is one entry of the language switch.
type LanguageLink struct {
	Code, Name, Href string
	Current          bool
}

// Page is what every template receives.
type Page struct {
	Lang      string
	Title     string
	Path      string
	Languages []LanguageLink
	Account   *identity.Account // who is signed in, if anyone
	Portal    bool              // a staff portal page: the portal's header
	Kiosk     bool              // a kiosk page: large, simple, no site navigation
	TestMode  bool              // payments go to the sandbox: no real money
	Staff     *StaffUser        // the signed-in staff member, on portal pages
	Visits    bool              // video visits are offered: the family's menu and the portal link their pages
	Money     bool              // deposits are taken: the family's menu links the money they sent
	Data      any
}

// Lang picks the request's language: the choice remembered on this device, else
// Accept-Language. (A family's own language, set on the account page, is their
// email's; saving it there picks it on that device too.)
func (s *Site) Lang(r *http.Request) string {
	chosen := ""
	if c, err := r.Cookie(LangCookie); err == nil {
		chosen = c.Value
	}
	return s.cat.Negotiate(chosen, r.Header.Get("Accept-Language"))
}

// pageKind says which of Kinlink's areas a page belongs to: each has its header.
type pageKind int

const (
	pageSite   pageKind = iota // the public site and the family area
	pagePortal                 // the staff portal
	pageKiosk                  // the resident kiosk
)

func (s *Site) render(w http.ResponseWriter, r *http.Request, status int, name, titleKey string, data any) {
	s.renderPage(w, r, status, name, titleKey, data, pageSite)
}

func (s *Site) renderPage(w http.ResponseWriter, r *http.Request, status int, name, titleKey string, data any, kind pageKind) {
	lang := s.Lang(r)
	p := Page{Lang: lang, Title: s.cat.T(lang, titleKey), Path: r.URL.Path, Data: data, Portal: kind == pagePortal, Kiosk: kind == pageKiosk,
		TestMode: s.testMode()}
	switch kind {
	case pagePortal:
		p.Staff, p.Visits = currentStaff(r), s.visits != nil
	case pageSite:
		p.Account, p.Visits, p.Money = currentAccount(r), s.visits != nil, s.deposits != nil
	}
	switchAt := "/lang?" // a kiosk's links stay inside the kiosk
	if kind == pageKiosk {
		switchAt = "/kiosk/lang?"
	}
	for _, code := range i18n.Supported() {
		p.Languages = append(p.Languages, LanguageLink{
			Code: code, Name: i18n.Names[code], Current: code == lang,
			Href: switchAt + url.Values{"to": {code}, "next": {r.URL.RequestURI()}}.Encode(),
		})
	}
	var b bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.Error("web: render", "page", name, "err", err, "request_id", httpx.RequestID(r.Context()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang)
	h.Add("Vary", "Accept-Language, Cookie")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (s *Site) home(w http.ResponseWriter, r *http.Request) {
	// A family signed in came for the app, not for what the service is: the home
	// page (and the logo, which links to it) opens their people.
	if currentAccount(r) != nil {
		http.Redirect(w, r, "/people", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "home", "home.title", struct {
		Services []facility.Offering
		Promises []string
	}{s.offers.Offerings(), s.shown(homePromises)})
}

func (s *Site) help(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "help", "help.title", struct{ Questions []string }{s.shown(helpQuestions)})
}

func (s *Site) privacy(w http.ResponseWriter, r *http.Request) {
	type section struct {
		Key   string
		Items []string
	}
	var sections []section
	for _, sec := range privacySections {
		sections = append(sections, section{sec.key, s.shown(sec.items)})
	}
	s.render(w, r, http.StatusOK, "privacy", "privacy.title", struct{ Sections []section }{sections})
}

// A line of a public page, and the service it speaks of ("" for none). The catalogs
// keep the words of every service; a page shows a line only while the server offers
// its service, so a service that is built appears on these pages by its entry in
// facility.Offered, and one that is not is never described.
type line struct {
	key     string
	service facility.Offering
}

var (
	homePromises = []line{{"refunds", facility.Messages}, {"prices", facility.Visits}, {"fees", ""}, {"language", ""}}
	// helpQuestions: help.<key>.q and help.<key>.a.
	helpQuestions = []line{{"find", ""}, {"stamps", facility.Messages}, {"review", facility.Messages}, {"password", ""},
		{"visits", facility.Visits}, {"contact", ""}, {"refund", ""}}
	// privacySections: privacy.<section>.title and .text, then a list of
	// privacy.<section>.<item> where the section has one.
	privacySections = []struct {
		key   string
		items []line
	}{
		{"collect", []line{{"account", ""}, {"people", ""}, {"messages", facility.Messages}, {"videograms", facility.VideoGrams},
			{"visits", facility.Visits}, {"deposits", facility.Deposits}, {"payments", ""}, {"security", ""}}},
		{"see", []line{{"messages", facility.Messages}, {"videograms", facility.VideoGrams}, {"visits", facility.Visits}}},
		{"keep", []line{{"messages", facility.Messages}, {"visits", facility.Visits}}},
		{"never", nil},
	}
)

// shown is the keys of the lines a page shows: those of no service and those of the
// services this server offers, in order.
func (s *Site) shown(lines []line) []string {
	var keys []string
	for _, l := range lines {
		if l.service == "" || s.offers.Has(l.service) {
			keys = append(keys, l.key)
		}
	}
	return keys
}

// switchLanguage remembers a language and goes back to the page it was chosen on.
// It is a plain link, so the switch works without JavaScript.
func (s *Site) switchLanguage(w http.ResponseWriter, r *http.Request) {
	if to := r.URL.Query().Get("to"); i18n.IsSupported(to) {
		s.rememberLanguage(w, to)
	}
	http.Redirect(w, r, LocalPath(r.URL.Query().Get("next")), http.StatusSeeOther)
}

// rememberLanguage keeps a language for this device's pages.
func (s *Site) rememberLanguage(w http.ResponseWriter, to string) {
	http.SetCookie(w, &http.Cookie{
		Name: LangCookie, Value: to, Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: s.secureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// LocalPath returns next as a clean path on this site, else "/". It refuses absolute
// URLs, "//host" and any backslash (browsers read "/\host" as "//host"), and it
// returns the path already cleaned, so that http.Redirect's own cleaning cannot turn
// an accepted "/./\host" or "/.//host" into one of those.
func LocalPath(next string) string {
	if next == "" || next[0] != '/' || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.Contains(u.Path, "\\") {
		return "/"
	}
	// A browser takes "%2e" for "." in a path ("/kiosk/%2e%2e/people" is
	// "/people" to it), so the path is cleaned as the browser will read it.
	clean := path.Clean(strings.NewReplacer("%2e", ".", "%2E", ".").Replace(u.EscapedPath()))
	if !strings.HasPrefix(clean, "/") || strings.HasPrefix(clean, "//") {
		return "/"
	}
	if u.RawQuery != "" {
		clean += "?" + u.RawQuery
	}
	return clean
}

func (s *Site) manifest(w http.ResponseWriter, r *http.Request) {
	b, _ := files.ReadFile("static/manifest.webmanifest")
	w.Header().Set("Content-Type", "application/manifest+json")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write(b)
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Files only: a folder's listing says what is there, which is nobody's business.
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

var errorKeys = map[int]string{
	http.StatusBadRequest:            "badrequest",
	http.StatusNotFound:              "notfound",
	http.StatusForbidden:             "forbidden",
	http.StatusRequestEntityTooLarge: "toolarge",
}

// Error renders the error page for status in the request's language.
func (s *Site) Error(w http.ResponseWriter, r *http.Request, status int) {
	key, ok := errorKeys[status]
	if !ok {
		key = "server"
	}
	s.errorPage(w, r, status, key)
}

// BadCharacters renders the refusal of a form holding control characters or bytes
// that are not UTF-8 (httpx.CleanInput), saying how to recover.
func (s *Site) BadCharacters(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusBadRequest, "badinput")
}

// CrossSiteRefused renders the refusal of a form that another site sent in the
// user's name (403, as a permission refusal, but said differently).
func (s *Site) CrossSiteRefused(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusForbidden, "crosssite")
}

func (s *Site) errorPage(w http.ResponseWriter, r *http.Request, status int, key string) {
	s.errorPageSaying(w, r, status, key, s.cat.T(s.Lang(r), "error."+key+".text"))
}

// ErrorData is an error page: what went wrong, where to go back to, and on a kiosk
// the device and the resident signed in, so the kiosk's frame stays whole.
type ErrorData struct {
	Text, RequestID, Back string
	Device                facility.KioskDevice
	Session               *facility.KioskSession
	IdleSecs              int
}

// errorPageSaying renders the error page of key with text of its own.
func (s *Site) errorPageSaying(w http.ResponseWriter, r *http.Request, status int, key, text string) {
	data := ErrorData{Text: text, Back: "/"}
	if key == "server" {
		data.RequestID = httpx.RequestID(r.Context())
	}
	// Staff stay in the portal's frame, with its menu, rather than the public site's;
	// a resident stays in the kiosk's, signed in, with its idle sign-out, and no link
	// leads out of it.
	kind := pageSite
	switch {
	case currentStaff(r) != nil && strings.HasPrefix(r.URL.Path, "/facility"):
		kind, data.Back = pagePortal, "/facility"
	case r.URL.Path == "/kiosk" || strings.HasPrefix(r.URL.Path, "/kiosk/"):
		kind, data.Back = pageKiosk, "/kiosk"
		if device, ok, err := s.kioskDevice(r); err == nil && ok {
			data.Device = device
			if sess, err := s.fac.KioskPeek(r.Context(), device, cookie(r, ResidentCookie)); err == nil {
				data.Session, data.IdleSecs = &sess, int(s.fac.KioskIdle().Seconds())
			}
		}
	}
	s.renderPage(w, r, status, "error", "error."+key+".title", data, kind)
}
