package i18n_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/i18n"
)

func TestCatalogsAreCompleteAndNegotiationPicksTheRightLanguage(t *testing.T) {
	c, err := i18n.Load() // fails if a key lacks a translation
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ chosen, accept, want string }{
		{"", "", "en"},
		{"", "es-MX,es;q=0.9,en;q=0.8", "es"},
		{"", "fr-FR,fr;q=0.9", "en"},
		{"", "fr;q=0.9,es;q=0.5", "es"},
		{"", "en-US,en;q=0.9,es;q=0.8", "en"},
		{"en", "es-MX", "en"},
		{"es", "", "es"},
		{"de", "es", "es"},
		{"", "garbage;;;q=x", "en"},
	}
	for _, tc := range cases {
		if got := c.Negotiate(tc.chosen, tc.accept); got != tc.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", tc.chosen, tc.accept, got, tc.want)
		}
	}
	if c.T("es", "nav.login") == c.T("en", "nav.login") {
		t.Errorf("the Login button reads %q in both languages", c.T("es", "nav.login"))
	}
}

// Issue 13, items 15 and 18: a stamp has one name in Spanish, in the pages and in the
// mail ("sellos" and "estampillas" were both used), and the staff menu's two
// resident pages have names a reader tells apart.
func TestSpanishSaysThingsOneWay(t *testing.T) {
	c, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range c.Keys() {
		if text := c.T("es", key); strings.Contains(strings.ToLower(text), "estampilla") {
			t.Errorf("%s calls a stamp an estampilla: %q", key, text)
		}
	}
	templates, _ := filepath.Glob("../mail/templates/*.es.*")
	if len(templates) == 0 {
		t.Fatal("no Spanish mail templates found")
	}
	for _, f := range templates {
		if b, _ := os.ReadFile(f); strings.Contains(strings.ToLower(string(b)), "estampilla") {
			t.Errorf("%s calls a stamp an estampilla", f)
		}
	}
	residents, roster := c.T("es", "portal.residents.title"), c.T("es", "portal.roster.title")
	if strings.Contains(roster, residents) || strings.Contains(residents, roster) {
		t.Errorf("the staff menu shows %q beside %q", residents, roster)
	}
}
