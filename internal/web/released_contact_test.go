package web_test

import (
	"strings"
	"testing"
)

// Issue 13, item 23: a contact whose resident was released says so on the family's
// list, instead of "Waiting for the facility" or "Approved".
func TestAReleasedPersonIsSaidReleased(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		approvedContact(t, w, "ana@example.org")
		if _, page := w.get(t, "/people"); !strings.Contains(page, "Approved") {
			t.Fatalf("the approved contact:\n%s", page)
		}
		w.importRoster(t, strings.Replace(roster, "A100,García,José,FSP,B-12,active,", "A100,García,José,FSP,B-12,released,", 1))
		_, page := w.get(t, "/people")
		if !strings.Contains(page, "No longer at a facility we serve") || strings.Contains(page, "status-approved") {
			t.Errorf("a released person's contact:\n%s", page)
		}
	})
}
