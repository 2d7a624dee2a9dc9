package contacts_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ids"
)

// world is two agencies as the contacts rules see them: Florida asks its facility
// administrators to approve contacts (for messages), Georgia approves none (neither
// for messages nor for visits, which agencies approve by default).
//
//	Florida: FSP (José A100, Amy A300 released), LCI (Kim A200)
//	Georgia: GSP (Lee G100)
type world struct {
	db       *database.DB
	fac      *facility.Service
	contacts *contacts.Service
	fl, ga   facility.Agency

	jose, kim, amy, lee string // resident ids

	ana, ben string // family accounts

	fspAdmin, lciAdmin, flAdmin, fspReviewer, gaAdmin facility.Access
}

var ctx = context.Background()

func setup(t *testing.T, db *database.DB) *world {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	// Cheap hashes: these tests are about contacts, not passwords.
	hasher := identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 2, 20, time.Second)
	id, err := identity.NewService(ctx, db, hasher, common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{db: db, fac: facility.NewService(db, id, log)}
	w.contacts = contacts.NewService(db, w.fac)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w.fl, err = w.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "FLDOC", Name: "Florida DOC", State: "FL"})
	must(err)
	w.ga, err = w.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "GDC", Name: "Georgia DOC", State: "GA"})
	must(err)
	facilities := map[string]facility.Facility{}
	for _, f := range []struct {
		agency string
		in     facility.FacilityInput
	}{
		{w.fl.ID, facility.FacilityInput{Code: "FSP", Name: "Florida State Prison", Kind: "prison", TimeZone: "America/New_York", Population: 1400}},
		{w.fl.ID, facility.FacilityInput{Code: "LCI", Name: "Lowell", Kind: "prison", TimeZone: "America/New_York", Population: 2100}},
		{w.ga.ID, facility.FacilityInput{Code: "GSP", Name: "Georgia State Prison", Kind: "prison", TimeZone: "America/New_York", Population: 1500}},
	} {
		fac, err := w.fac.CreateFacility(ctx, facility.Operator, f.agency, f.in)
		must(err)
		facilities[f.in.Code] = fac
	}
	policies := facility.Policies{StampPriceCents: 50, MessageMaxChars: 6000, VideoGramSeconds: 30, MessageRetentionDays: 365, RecordingRetentionDays: 365}
	policies.ApprovalForMessages = true
	must(w.fac.UpdatePolicies(ctx, facility.Operator, w.fl.ID, policies))
	policies.ApprovalForMessages, policies.ApprovalForVisits = false, false
	must(w.fac.UpdatePolicies(ctx, facility.Operator, w.ga.ID, policies))

	const header = "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"
	roster := func(agencyID, csv string) {
		t.Helper()
		if _, err := w.fac.ImportRoster(ctx, facility.Operator, agencyID, strings.NewReader(header+csv), facility.RosterOptions{Apply: true}); err != nil {
			t.Fatal(err)
		}
	}
	roster(w.fl.ID, "A100,García,José,FSP,B-1,active,\nA200,Lee,Kim,LCI,A-1,active,\nA300,Brown,Amy,FSP,C-1,active,\n")
	roster(w.ga.ID, "G100,Lee,Lee,GSP,D-1,active,\n")
	find := func(agency, number string) string {
		t.Helper()
		found, err := w.fac.SearchResidents(ctx, facility.ResidentSearch{AgencyCode: agency, Number: number})
		if err != nil || len(found) != 1 {
			t.Fatalf("resident %s: %v %v", number, found, err)
		}
		return found[0].ID
	}
	w.jose, w.kim, w.amy, w.lee = find("FLDOC", "A100"), find("FLDOC", "A200"), find("FLDOC", "A300"), find("GDC", "G100")
	roster(w.fl.ID, "A100,García,José,FSP,B-1,active,\nA200,Lee,Kim,LCI,A-1,active,\n") // Amy is released

	family := func(email string) string {
		t.Helper()
		if _, err := id.EnsureAccount(ctx, identity.SignupRequest{Email: email, Password: "a long family passphrase", FullName: "Family " + email,
			SecurityQuestion: "first_pet", SecurityAnswer: "Canela", Locale: "en"}); err != nil {
			t.Fatal(err)
		}
		a, err := id.AccountByEmail(ctx, email)
		must(err)
		return a.ID
	}
	w.ana, w.ben = family("ana@example.org"), family("ben@example.org")

	staff := func(email string, agencyID string, grants ...facility.Grant) facility.Access {
		t.Helper()
		accountID, err := id.EnsureStaff(ctx, email, "Staff "+email, "staff pass 42!", "JBSWY3DPEHPK3PXP")
		must(err)
		for _, g := range grants {
			must(w.fac.GrantRole(ctx, facility.Operator, agencyID, accountID, g.Role, g.FacilityID))
		}
		a, err := w.fac.AccessOf(ctx, accountID)
		must(err)
		return a
	}
	w.fspAdmin = staff("fsp.admin@example.org", w.fl.ID, facility.Grant{Role: facility.FacilityAdmin, FacilityID: facilities["FSP"].ID},
		facility.Grant{Role: facility.MailReviewer, FacilityID: facilities["LCI"].ID})
	w.lciAdmin = staff("lci.admin@example.org", w.fl.ID, facility.Grant{Role: facility.FacilityAdmin, FacilityID: facilities["LCI"].ID})
	w.flAdmin = staff("fl.admin@example.org", w.fl.ID, facility.Grant{Role: facility.AgencyAdmin})
	w.fspReviewer = staff("fsp.reviewer@example.org", w.fl.ID, facility.Grant{Role: facility.MailReviewer, FacilityID: facilities["FSP"].ID})
	w.gaAdmin = staff("ga.admin@example.org", w.ga.ID, facility.Grant{Role: facility.AgencyAdmin})
	return w
}

func (w *world) request(t *testing.T, accountID, residentID string) contacts.Contact {
	t.Helper()
	c, err := w.contacts.Request(ctx, accountID, residentID)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return c
}

// get is the contact as its family sees it.
func (w *world) get(t *testing.T, accountID, contactID string) contacts.Contact {
	t.Helper()
	c, err := w.contacts.Get(ctx, accountID, contactID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return c
}

func pendingIDs(t *testing.T, w *world, a facility.Access) []string {
	t.Helper()
	list, err := w.contacts.Pending(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range list {
		out = append(out, p.ID)
	}
	return out
}

// Adding a resident: where the agency asks for approval the contact waits, where it
// does not the contact is approved at once; asking again changes nothing, and only a
// resident who is at a facility can be added.
func TestAddingAContact(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		c := w.request(t, w.ana, w.jose)
		if c.Status != contacts.Pending || c.AccountID != w.ana || c.Resident.ID != w.jose || c.Resident.Facility.Code != "FSP" {
			t.Errorf("a contact at an agency that approves contacts: %+v", c)
		}
		if g := w.request(t, w.ana, w.lee); g.Status != contacts.Approved {
			t.Errorf("a contact at an agency that does not approve contacts: %s", g.Status)
		}
		if again := w.request(t, w.ana, w.jose); again.ID != c.ID || again.Status != contacts.Pending {
			t.Errorf("asking again: %+v, first %+v", again, c)
		}
		list, err := w.contacts.OfAccount(ctx, w.ana)
		if err != nil || len(list) != 2 {
			t.Fatalf("Ana's people: %d, %v", len(list), err)
		}

		// Approval for visits alone also makes new contacts wait; decided ones stay.
		policies := facility.Policies{StampPriceCents: 50, MessageMaxChars: 6000, VideoGramSeconds: 30, MessageRetentionDays: 365,
			RecordingRetentionDays: 365, ApprovalForVisits: true}
		if err := w.fac.UpdatePolicies(ctx, facility.Operator, w.ga.ID, policies); err != nil {
			t.Fatal(err)
		}
		if b := w.request(t, w.ben, w.lee); b.Status != contacts.Pending {
			t.Errorf("a contact at an agency that approves visits: %s", b.Status)
		}
		if g := w.request(t, w.ana, w.lee); g.Status != contacts.Approved {
			t.Errorf("an approved contact after the policy changed: %s", g.Status)
		}

		if _, err := w.contacts.Request(ctx, w.ana, w.amy); !errors.Is(err, contacts.ErrNotActive) {
			t.Errorf("adding a released resident: %v", err)
		}
		if _, err := w.contacts.Request(ctx, w.ana, ids.New()); !errors.Is(err, contacts.ErrUnknownResident) {
			t.Errorf("adding a resident who does not exist: %v", err)
		}
		if list, _ := w.contacts.OfAccount(ctx, w.ana); len(list) != 2 {
			t.Errorf("refused requests left contacts: %d", len(list))
		}
	})
}

// A family asking many times at once (a double tap, two devices) ends with one contact.
func TestParallelRequestsMakeOneContact(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		var wg sync.WaitGroup
		got := make([]string, 8)
		for i := range got {
			wg.Go(func() {
				c, err := w.contacts.Request(ctx, w.ana, w.jose)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
				}
				got[i] = c.ID
			})
		}
		wg.Wait()
		for _, id := range got {
			if id != got[0] {
				t.Fatalf("parallel requests answered different contacts: %v", got)
			}
		}
		if list, _ := w.contacts.OfAccount(ctx, w.ana); len(list) != 1 {
			t.Errorf("%d contacts after parallel requests", len(list))
		}
	})
}

// One family never sees or reaches another family's contacts.
func TestFamiliesSeeOnlyTheirOwnContacts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		anas := w.request(t, w.ana, w.jose)
		bens := w.request(t, w.ben, w.jose)
		if anas.ID == bens.ID {
			t.Fatal("two families share one contact")
		}
		if _, err := w.contacts.Get(ctx, w.ben, anas.ID); !errors.Is(err, contacts.ErrNotFound) {
			t.Errorf("Ben reading Ana's contact: %v", err)
		}
		if _, err := w.contacts.Get(ctx, w.ana, "not-an-id"); !errors.Is(err, contacts.ErrNotFound) {
			t.Errorf("a made-up contact id: %v", err)
		}
		list, _ := w.contacts.OfAccount(ctx, w.ben)
		if len(list) != 1 || list[0].ID != bens.ID {
			t.Errorf("Ben's people: %+v", list)
		}
	})
}

// Only an administrator of the resident's facility (or of the agency) decides a
// contact; anyone else, in the agency or outside it, finds no such request.
func TestOnlyTheFacilitysAdministratorsDecide(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		atFSP := w.request(t, w.ana, w.jose)
		atLCI := w.request(t, w.ana, w.kim)
		for name, a := range map[string]facility.Access{
			"LCI's administrator":              w.lciAdmin,
			"FSP's mail reviewer":              w.fspReviewer,
			"another agency's administrator":   w.gaAdmin,
			"a staff member with no agency id": {AccountID: w.fspAdmin.AccountID, Grants: w.fspAdmin.Grants},
		} {
			if err := w.contacts.Decide(ctx, a, atFSP.ID, true, ""); !errors.Is(err, contacts.ErrNotFound) {
				t.Errorf("%s approving an FSP contact: %v", name, err)
			}
		}
		// FSP's administrator reviews mail at LCI: that is no right to decide there.
		if err := w.contacts.Decide(ctx, w.fspAdmin, atLCI.ID, true, ""); !errors.Is(err, contacts.ErrNotFound) {
			t.Errorf("FSP's administrator approving an LCI contact: %v", err)
		}
		if c := w.get(t, w.ana, atFSP.ID); c.Status != contacts.Pending {
			t.Fatalf("refused decisions changed the contact: %s", c.Status)
		}

		if err := w.contacts.Decide(ctx, w.fspAdmin, atFSP.ID, true, ""); err != nil {
			t.Fatalf("FSP's administrator approving: %v", err)
		}
		if c := w.get(t, w.ana, atFSP.ID); c.Status != contacts.Approved {
			t.Errorf("after approval Ana sees %s", c.Status)
		}
		if err := w.contacts.Decide(ctx, w.flAdmin, atLCI.ID, false, "Not on the visitor list."); err != nil {
			t.Fatalf("the agency's administrator denying: %v", err)
		}
		if c := w.get(t, w.ana, atLCI.ID); c.Status != contacts.Denied || c.Reason != "Not on the visitor list." {
			t.Errorf("after the denial Ana sees %s %q", c.Status, c.Reason)
		}

		// Each decision is in the audit log, with who made it and the reason.
		rows, err := audit.Search(ctx, db, audit.Filter{AgencyID: w.fl.ID, Action: "contact."})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range rows {
			got[r.Subject] = r.Action + " by " + r.Actor + ": " + r.Detail
		}
		if want := "contact.approved by staff:" + w.fspAdmin.AccountID + ": "; got["contact:"+atFSP.ID] != want {
			t.Errorf("audit of the approval: %q, want %q", got["contact:"+atFSP.ID], want)
		}
		if want := "contact.denied by staff:" + w.flAdmin.AccountID + ": Not on the visitor list."; got["contact:"+atLCI.ID] != want {
			t.Errorf("audit of the denial: %q, want %q", got["contact:"+atLCI.ID], want)
		}
	})
}

// A denial says why, in words a family can read: a reason is required, at most 500
// characters, with nothing hidden in it. A bad reason changes nothing.
func TestDenialReasons(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		c := w.request(t, w.ana, w.jose)
		for _, tc := range []struct {
			name   string
			reason string
			want   error
		}{
			{"no reason", "", contacts.ErrNeedReason},
			{"only spaces", " \t\n ", contacts.ErrNeedReason},
			{"501 characters", strings.Repeat("é", 501), contacts.ErrLongReason},
			{"a direction override", "Denied \u202eevil", contacts.ErrBadReason},
			{"a zero-width space", "Den\u200bied", contacts.ErrBadReason},
			{"a control character", "Denied\x07", contacts.ErrBadReason},
			{"not UTF-8", "Denied \xff", contacts.ErrBadReason},
		} {
			if err := w.contacts.Decide(ctx, w.fspAdmin, c.ID, false, tc.reason); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if got := w.get(t, w.ana, c.ID); got.Status != contacts.Pending {
			t.Fatalf("refused reasons decided the contact: %s %q", got.Status, got.Reason)
		}
		// Exactly 500 characters is allowed, and spaces around a reason are dropped.
		long := strings.Repeat("é", 500)
		if err := w.contacts.Decide(ctx, w.fspAdmin, c.ID, false, "  "+long+"\n"); err != nil {
			t.Fatalf("a 500-character reason: %v", err)
		}
		if got := w.get(t, w.ana, c.ID); got.Status != contacts.Denied || got.Reason != long {
			t.Errorf("after the denial: %s, reason of %d characters", got.Status, len([]rune(got.Reason)))
		}
		// An approval needs no reason; one given is kept.
		other := w.request(t, w.ben, w.jose)
		if err := w.contacts.Decide(ctx, w.fspAdmin, other.ID, true, "Verified by phone."); err != nil {
			t.Fatal(err)
		}
		if got := w.get(t, w.ben, other.ID); got.Status != contacts.Approved || got.Reason != "Verified by phone." {
			t.Errorf("approval with a note: %s %q", got.Status, got.Reason)
		}
	})
}

// Only a waiting request is decided: a second decision (a form sent twice, a second
// officer) does not turn the first around, and a denied family cannot ask again to
// get a fresh request.
func TestOnlyPendingRequestsAreDecided(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		c := w.request(t, w.ana, w.jose)
		if err := w.contacts.Decide(ctx, w.fspAdmin, c.ID, false, "Unknown to the resident."); err != nil {
			t.Fatal(err)
		}
		if err := w.contacts.Decide(ctx, w.flAdmin, c.ID, true, ""); !errors.Is(err, contacts.ErrDecided) {
			t.Errorf("approving a denied contact: %v", err)
		}
		if err := w.contacts.Decide(ctx, w.fspAdmin, c.ID, false, "Again."); !errors.Is(err, contacts.ErrDecided) {
			t.Errorf("denying twice: %v", err)
		}
		if got := w.get(t, w.ana, c.ID); got.Status != contacts.Denied || got.Reason != "Unknown to the resident." {
			t.Errorf("after later decisions: %s %q", got.Status, got.Reason)
		}
		if again := w.request(t, w.ana, w.jose); again.ID != c.ID || again.Status != contacts.Denied {
			t.Errorf("asking again after a denial: %+v", again)
		}
		if ids := pendingIDs(t, w, w.fspAdmin); len(ids) != 0 {
			t.Errorf("a decided request is still listed: %v", ids)
		}

		// Two officers deciding the same request at once: exactly one decides it.
		next := w.request(t, w.ben, w.jose)
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() {
				errs[i] = w.contacts.Decide(ctx, w.fspAdmin, next.ID, i%2 == 0, "Decision "+string(rune('A'+i)))
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, contacts.ErrDecided):
				t.Errorf("a parallel decision: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d parallel decisions took effect: %v", won, errs)
		}
		rows, _ := audit.Search(ctx, db, audit.Filter{AgencyID: w.fl.ID, Subject: "contact:" + next.ID})
		if len(rows) != 1 {
			t.Errorf("%d audit records for one decision", len(rows))
		}
	})
}

// The queue of requests shows each administrator the requests they may decide, no
// others, and reading it (families' names and emails) is audited.
func TestPendingListsWhatTheStaffMemberMayDecide(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		atFSP := w.request(t, w.ana, w.jose)
		atLCI := w.request(t, w.ben, w.kim)
		w.request(t, w.ana, w.lee) // Georgia approves at once: never pending

		for _, tc := range []struct {
			name string
			a    facility.Access
			want []string
		}{
			{"FSP's administrator (also a reviewer at LCI)", w.fspAdmin, []string{atFSP.ID}},
			{"LCI's administrator", w.lciAdmin, []string{atLCI.ID}},
			{"the agency's administrator", w.flAdmin, []string{atFSP.ID, atLCI.ID}},
			{"FSP's mail reviewer", w.fspReviewer, nil},
			{"another agency's administrator", w.gaAdmin, nil},
		} {
			if got := pendingIDs(t, w, tc.a); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s sees %v, want %v", tc.name, got, tc.want)
			}
		}
		list, _ := w.contacts.Pending(ctx, w.fspAdmin)
		if len(list) != 1 || list[0].FamilyEmail != "ana@example.org" || list[0].FamilyName != "Family ana@example.org" || list[0].Resident.Number != "A100" {
			t.Errorf("the request as staff see it: %+v", list)
		}
		rows, err := audit.Search(ctx, db, audit.Filter{AgencyID: w.fl.ID, Action: "contacts.view", Actor: "staff:" + w.fspAdmin.AccountID})
		if err != nil || len(rows) == 0 {
			t.Errorf("reading the queue was not audited: %v", err)
		}
	})
}
