package web_test

import (
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/web"
)

// publicPages renders the home page, help and privacy of a site that offers offers,
// in lang, as one text.
func publicPages(t *testing.T, offers facility.Offers, lang string) string {
	t.Helper()
	cat, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	site, err := web.New(web.Deps{Catalog: cat, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Offers: offers})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	site.Routes(mux)
	var all strings.Builder
	for _, path := range []string{"/", "/help", "/privacy"} {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(&http.Cookie{Name: web.LangCookie, Value: lang})
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Language") != lang {
			t.Fatalf("GET %s in %s: %d %s", path, lang, rec.Code, rec.Header().Get("Content-Language"))
		}
		all.WriteString(rec.Body.String())
	}
	return all.String()
}

// Words that name a service which does not exist yet, in either language.
var notYet = map[string]*regexp.Regexp{
	"en": regexp.MustCompile(`(?i)videogram|video|visit|recording`),
	"es": regexp.MustCompile(`(?i)videograma|video|visita|graba`),
}

// Issue 13, item 19: the public site, help and privacy describe only what this server
// offers. Today that is eMessages with photos and deposits: no VideoGrams or visits, and
// no visit that "starts from your account page". When a service is offered, the same
// pages describe it, from the words the catalogs already hold.
func TestPublicPagesDescribeOnlyOfferedServices(t *testing.T) {
	for _, lang := range []string{"en", "es"} {
		t.Run(lang, func(t *testing.T) {
			today := publicPages(t, facility.Offered(), lang)
			if found := notYet[lang].FindAllString(today, -1); found != nil {
				t.Errorf("the public pages today name services that do not exist: %q", found)
			}
			for _, want := range map[string][]string{
				"en": {"eMessages with photos", "If a message is rejected, you get its stamps back.", "What is a stamp?", "The messages and photos you send and receive.",
					"Deposits", "The fee is shown before you pay", "The deposits you send."},
				"es": {"eMensajes con fotos", "Si un mensaje es rechazado, le devolvemos sus sellos.", "¿Qué es un sello?", "Los mensajes y las fotos que envía y recibe.",
					"Depósitos", "La comisión se muestra antes de pagar", "Los depósitos que envía."},
			}[lang] {
				if !strings.Contains(today, want) {
					t.Errorf("the public pages lack %q", want)
				}
			}

			all := append(facility.Offered(), facility.Offer{Offering: facility.VideoGrams}, facility.Offer{Offering: facility.Visits})
			later := publicPages(t, all, lang)
			for _, want := range map[string][]string{
				"en": {"VideoGrams", "Video visits", "Deposits", "What do I need for a video visit?", "The VideoGrams you record.",
					"Video visits, live or recorded.", "The deposits you send.", "Video visit prices stay within the federal caps"},
				"es": {"VideoGramas", "Visitas por video", "Depósitos", "¿Qué necesito para una visita por video?", "Los VideoGramas que graba.",
					"Las visitas por video, en vivo o grabadas.", "Los depósitos que envía.", "Los precios de las visitas por video respetan los límites federales"},
			}[lang] {
				if !strings.Contains(later, want) {
					t.Errorf("with every service offered, the public pages lack %q", want)
				}
			}
			// Even then, help says nothing of where a visit starts: that is the visits'
			// work to say.
			if strings.Contains(later, "account page") || strings.Contains(later, "desde su cuenta") {
				t.Errorf("help says where a visit starts")
			}
		})
	}
}

// The agency page hides the policies of services the server does not offer
// (VideoGram length, how long visit recordings are kept), and saving the policies
// keeps their stored values, whatever a form sends for them. The approval that visits
// will use is named by what it does today: new contacts wait for review.
func TestAgencyPoliciesOfServicesNotOfferedAreKept(t *testing.T) {
	// A server without ffmpeg, which offers no VideoGrams.
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			agencyPoliciesNotOffered(t, startWith(t, e.Setting, map[string]string{"KINLINK_FFMPEG": "kinlink-test-no-ffmpeg"}))
		})
	}
}

func agencyPoliciesNotOffered(t *testing.T, w *world) {
	{
		setupAgency(t, w)
		secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
		admin := w.browser(t)
		admin.portalLogin(t, "admin@example.org", "staff pass 42!", secret)

		_, page := admin.get(t, "/facility/agency")
		if !strings.Contains(page, `id="message_max_chars"`) || strings.Contains(page, `id="videogram_seconds"`) ||
			strings.Contains(page, `id="recording_retention_days"`) || strings.Contains(page, "VideoGram") || strings.Contains(page, "visit recordings") || strings.Contains(page, "video visits") ||
			!strings.Contains(page, "Facility administrators review every new contact") {
			t.Fatalf("the agency page shows policies of services that do not exist:\n%s", page)
		}
		// The form as the page sends it: no VideoGram or recording fields.
		res, page := admin.post(t, "/facility/agency/policies", url.Values{"stamp_price_cents": {"25"}, "message_max_chars": {"8000"},
			"message_retention_days": {"400"}, "approval_for_visits": {"on"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("saving the policies the page shows: %d\n%s", res.StatusCode, page)
		}
		// A form that sends them anyway changes nothing of them.
		res, _ = admin.post(t, "/facility/agency/policies", url.Values{"stamp_price_cents": {"25"}, "message_max_chars": {"8000"},
			"message_retention_days": {"400"}, "videogram_seconds": {"5"}, "recording_retention_days": {"1"}, "approval_for_visits": {"on"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("saving with values for services that do not exist: %d", res.StatusCode)
		}
		_, page = admin.get(t, "/facility/audit?action=agency.policies")
		if n := strings.Count(page, "stamp 25¢, 8000 chars, videogram 30s, retention 400/365 days, approval messages false visits true"); n != 2 {
			t.Errorf("the stored VideoGram length and recording retention changed (%d saves kept them):\n%s", n, page)
		}
	}
}
