package visits_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/visits"
)

// bookingWorld is the world of setup with people to visit at FSP (New York time,
// station "Unit B"): José (A100, housing B-1), Kim (A200, C-2) and Sam (A300,
// restricted from video); families Ana, Ben and Cy, each with $20 in the wallet
// and approved contacts, and a clock that stands at Monday 1 March 2027, 08:00 in
// New York. FSP opens weekdays 09:00–12:00 in 20-minute slots at 16¢ a minute
// ($3.20 a slot), bookable 24 hours to 14 days ahead, three visits a week,
// approved by staff, cancellable until an hour before.
type bookingWorld struct {
	*world
	now            time.Time
	ny             *time.Location
	jose, kim, sam string // residents
	ana, ben, cy   string // families
	// contacts, by family then resident
	contact map[string]map[string]string
	mailer  *kmail.Service
}

func bookingSetup(t *testing.T, db *database.DB) *bookingWorld {
	t.Helper()
	w := &bookingWorld{world: setup(t, db), contact: map[string]map[string]string{},
		mailer: kmail.NewService("no-reply@kinlink.example.org", "https://kinlink.example.org", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	w.ny, err = time.LoadLocation("America/New_York")
	must(err)
	w.now = time.Date(2027, 3, 1, 8, 0, 0, 0, w.ny)
	w.visits.SetClock(func() time.Time { return w.now })

	policies := facility.Policies{StampPriceCents: 50, MessageMaxChars: 6000, VideoGramSeconds: 30, MessageRetentionDays: 365,
		RecordingRetentionDays: 365, ApprovalForVisits: true}
	must(w.fac.UpdatePolicies(ctx, facility.Operator, w.fl.ID, policies))
	const header = "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"
	_, err = w.fac.ImportRoster(ctx, facility.Operator, w.fl.ID, strings.NewReader(header+
		"A100,García,José,FSP,B-1,active,\nA200,Lee,Kim,FSP,C-2,active,\nA300,Smith,Sam,FSP,C-3,active,no_video\n"), facility.RosterOptions{Apply: true})
	must(err)
	w.jose, w.kim, w.sam = w.resident(t, "A100"), w.resident(t, "A200"), w.resident(t, "A300")

	id := w.id
	for _, name := range []string{"ana", "ben", "cy"} {
		email := name + "@example.org"
		_, err := id.EnsureAccount(ctx, identity.SignupRequest{Email: email, Password: "a long family passphrase", FullName: strings.ToUpper(name[:1]) + name[1:] + " Family",
			SecurityQuestion: "first_pet", SecurityAnswer: "Canela", Locale: "en"})
		must(err)
		a, err := id.AccountByEmail(ctx, email)
		must(err)
		w.fund(t, a.ID, 2000)
		w.contact[a.ID] = map[string]string{}
		for _, r := range []string{w.jose, w.kim, w.sam} {
			c, err := w.contacts.Request(ctx, a.ID, r)
			must(err)
			must(w.contacts.Decide(ctx, w.fspAdmin, c.ID, true, ""))
			w.contact[a.ID][r] = c.ID
		}
		switch name {
		case "ana":
			w.ana = a.ID
		case "ben":
			w.ben = a.ID
		default:
			w.cy = a.ID
		}
	}

	sch := visits.Schedule{SlotMinutes: 20, MinLeadHours: 24, MaxAheadDays: 14, WeeklyLimit: 3, NeedsApproval: true, RateMills: 160, CancelHours: 1}
	for d := time.Monday; d <= time.Friday; d++ {
		sch.Hours = append(sch.Hours, visits.Hours{Weekday: d, Start: clock(t, "09:00"), End: clock(t, "12:00")})
	}
	must(w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, sch))
	must(w.visits.SetStation(ctx, w.fspAdmin, w.unitB.ID, true, "Housing unit B"))
	return w
}

func (w *bookingWorld) resident(t *testing.T, number string) string {
	t.Helper()
	found, err := w.fac.SearchResidents(ctx, facility.ResidentSearch{AgencyCode: "FLDOC", Number: number})
	if err != nil || len(found) != 1 {
		t.Fatalf("resident %s: %v %v", number, found, err)
	}
	return found[0].ID
}

// fund puts cents in a family's wallet, as a card top-up does.
func (w *bookingWorld) fund(t *testing.T, accountID string, cents int64) {
	t.Helper()
	err := w.db.InTx(ctx, func(tx *sql.Tx) error {
		_, _, err := w.ledger.Post(ctx, tx, ledger.Transaction{Kind: "topup", IdempotencyKey: "test-topup:" + accountID + time.Now().String(),
			Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -cents}, {Account: ledger.WalletOf(accountID), Amount: cents}},
			Card:    ledger.CardRef{Kind: ledger.CardCharge, ChargeID: "ch_test_topup"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *bookingWorld) wallet(t *testing.T, accountID string) int64 {
	t.Helper()
	b, err := w.ledger.Balance(ctx, ledger.WalletOf(accountID))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// at is a wall time at FSP.
func (w *bookingWorld) at(day, hhmm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", day+" "+hhmm, w.ny)
	if err != nil {
		panic(err)
	}
	return t
}

func (w *bookingWorld) book(accountID, residentID string, start time.Time, key string) (visits.Visit, error) {
	return w.visits.Book(ctx, accountID, visits.Booking{ContactID: w.contact[accountID][residentID], Start: start, Minutes: 20, Key: key})
}

// verify checks the ledger balances.
func (w *bookingWorld) verify(t *testing.T) {
	t.Helper()
	r, err := w.ledger.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("ledger: %v", r.Problems)
	}
}

// mails are the mails queued to an address, by template, with their data.
func (w *bookingWorld) mails(t *testing.T, to string) []kmail.Message {
	t.Helper()
	rows, err := w.db.Read().QueryContext(ctx, "SELECT payload FROM jobs WHERE kind = $1 ORDER BY id", kmail.JobKind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []kmail.Message
	for rows.Next() {
		var payload string
		var m kmail.Message
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			t.Fatal(err)
		}
		if m.To == to && strings.HasPrefix(m.Template, "visit_") {
			// Each renders in its language, its calendar file attached.
			composed, err := w.mailer.Compose(m)
			if err != nil {
				t.Fatalf("%s: %v", m.Template, err)
			}
			var b strings.Builder
			if _, err := composed.WriteTo(&b); err != nil || !strings.Contains(b.String(), "Content-Type: text/calendar") {
				t.Fatalf("%s: no calendar file attached (%v)", m.Template, err)
			}
			out = append(out, m)
		}
	}
	return out
}

func TestBookingHoldsThePriceUntilStaffDecide(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := bookingSetup(t, db)
		offer, err := w.visits.Offer(ctx, w.ana, w.contact[w.ana][w.jose], visits.Date{}, 3)
		if err != nil {
			t.Fatal(err)
		}
		// Monday 08:00: Monday is within the 24 hours, Tuesday from 09:00 is not.
		if offer.Facility != "Florida State Prison" || offer.RateMills != 160 || len(offer.Slots) != 9+9 {
			t.Fatalf("offer: %s %d, %d slots", offer.Facility, offer.RateMills, len(offer.Slots))
		}
		first := offer.Slots[0]
		if !first.Start.Equal(w.at("2027-03-02", "09:00")) || offer.Price(first) != 320 || first.Start.Location().String() != "America/New_York" {
			t.Fatalf("first slot %v costs %d", first.Start, offer.Price(first))
		}

		v, err := w.book(w.ana, w.jose, w.at("2027-03-02", "09:00"), "k1")
		if err != nil {
			t.Fatal(err)
		}
		if v.State != visits.Requested || v.HeldCents != 320 || v.StationID != w.unitB.ID || v.End.Sub(v.Start) != 20*time.Minute {
			t.Fatalf("visit %+v", v)
		}
		if b := w.wallet(t, w.ana); b != 2000-320 {
			t.Fatalf("wallet %d after the hold", b)
		}
		if held, _ := w.ledger.Balance(ctx, ledger.HoldFor("visit:"+v.ID)); held != 320 {
			t.Fatalf("held %d", held)
		}
		// The family is told, with the visit for their calendar in UTC.
		m := w.mails(t, "ana@example.org")
		if len(m) != 1 || m[0].Template != "visit_booked" || m[0].Data["State"] != "requested" || len(m[0].Attachments) != 1 ||
			!strings.Contains(m[0].Attachments[0].Body, "DTSTART:20270302T140000Z") || !strings.Contains(m[0].Attachments[0].Body, "STATUS:TENTATIVE") {
			t.Fatalf("mails %+v", m)
		}
		// A retry is the same booking, held once; the key for another slot is refused.
		again, err := w.book(w.ana, w.jose, w.at("2027-03-02", "09:00"), "k1")
		if err != nil || again.ID != v.ID || w.wallet(t, w.ana) != 2000-320 {
			t.Fatalf("retry: %v %v, wallet %d", again.ID, err, w.wallet(t, w.ana))
		}
		if _, err := w.book(w.ana, w.jose, w.at("2027-03-02", "09:20"), "k1"); !errors.Is(err, visits.ErrKeyReused) {
			t.Fatalf("key reused: %v", err)
		}

		// The officer sees the request, with where the resident lives and who visits.
		list, err := w.visits.StaffVisits(ctx, w.fspOfficer, visits.StaffQuery{FacilityID: w.fsp.ID, State: visits.Requested})
		if err != nil || len(list) != 1 || list[0].Resident.HousingUnit != "B-1" || list[0].Visitor != "Ana Family" || list[0].Station.Location != "Housing unit B" {
			t.Fatalf("requests: %+v %v", list, err)
		}
		if _, err := w.visits.StaffVisits(ctx, w.gaAdmin, visits.StaffQuery{FacilityID: w.fsp.ID}); !errors.Is(err, facility.ErrNotFound) {
			t.Fatalf("another agency: %v", err)
		}
		if err := w.visits.Decide(ctx, w.lciAdmin, v.ID, true, ""); !errors.Is(err, facility.ErrForbidden) {
			t.Fatalf("another facility's admin: %v", err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, v.ID, false, "  "); !errors.Is(err, visits.ErrNeedReason) {
			t.Fatalf("a rejection without a reason: %v", err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, v.ID, true, ""); err != nil {
			t.Fatal(err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, v.ID, false, "Lockdown"); !errors.Is(err, visits.ErrDecided) {
			t.Fatalf("decided twice: %v", err)
		}
		got, err := w.visits.Visit(ctx, w.ana, v.ID)
		if err != nil || got.State != visits.Scheduled || got.HeldCents != 320 {
			t.Fatalf("approved: %+v %v", got, err)
		}
		if _, err := w.visits.Visit(ctx, w.ben, v.ID); !errors.Is(err, visits.ErrNotFound) {
			t.Fatalf("another family's visit: %v", err)
		}

		// A rejection gives everything back and says why.
		r, err := w.book(w.ana, w.jose, w.at("2027-03-03", "10:00"), "k2")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, r.ID, false, "The visiting room is closed for repairs"); err != nil {
			t.Fatal(err)
		}
		if b := w.wallet(t, w.ana); b != 2000-320 {
			t.Fatalf("wallet %d after the rejection", b)
		}
		m = w.mails(t, "ana@example.org")
		if len(m) != 4 || m[1].Template != "visit_approved" || m[2].Template != "visit_booked" || m[3].Template != "visit_rejected" ||
			m[3].Data["Reason"] != "The visiting room is closed for repairs" || !strings.Contains(m[3].Attachments[0].Body, "METHOD:CANCEL") {
			t.Fatalf("mails %+v", m)
		}
		if n := len(entries(t, w.world, w.fl.ID, "visit.approve")) + len(entries(t, w.world, w.fl.ID, "visit.reject")); n != 2 {
			t.Fatalf("%d decisions audited", n)
		}
		w.verify(t)
	})
}

func TestBookingRefusals(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := bookingSetup(t, db)
		tue := w.at("2027-03-02", "10:00")
		for _, c := range []struct {
			name    string
			account string
			booking visits.Booking
			want    error
		}{
			{"no video", w.ana, visits.Booking{ContactID: w.contact[w.ana][w.sam], Start: tue, Minutes: 20}, visits.ErrNoVideo},
			{"not a slot's length", w.ana, visits.Booking{ContactID: w.contact[w.ana][w.jose], Start: tue, Minutes: 30}, visits.ErrNoSlot},
			{"between slots", w.ana, visits.Booking{ContactID: w.contact[w.ana][w.jose], Start: tue.Add(5 * time.Minute), Minutes: 20}, visits.ErrNoSlot},
			{"too soon", w.ana, visits.Booking{ContactID: w.contact[w.ana][w.jose], Start: w.at("2027-03-01", "11:00"), Minutes: 20}, visits.ErrNoSlot},
			{"too far", w.ana, visits.Booking{ContactID: w.contact[w.ana][w.jose], Start: w.at("2027-03-16", "09:00"), Minutes: 20}, visits.ErrNoSlot},
			{"closed hours", w.ana, visits.Booking{ContactID: w.contact[w.ana][w.jose], Start: w.at("2027-03-02", "13:00"), Minutes: 20}, visits.ErrNoSlot},
			{"another family's contact", w.ben, visits.Booking{ContactID: w.contact[w.ana][w.jose], Start: tue, Minutes: 20}, visits.ErrNotFound},
			{"a key no app makes", w.ana, visits.Booking{ContactID: w.contact[w.ana][w.jose], Start: tue, Minutes: 20, Key: "two words"}, visits.ErrBadKey},
		} {
			if _, err := w.visits.Book(ctx, c.account, c.booking); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}

		// Two families may not book one resident at one time, even at two stations.
		if err := w.visits.SetStation(ctx, w.fspAdmin, w.kioskNamed(t, "Visiting room 1"), true, "Visiting room"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.book(w.ana, w.jose, tue, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := w.book(w.ben, w.jose, tue, ""); !errors.Is(err, visits.ErrResidentBusy) {
			t.Fatalf("the resident twice at once: %v", err)
		}
		// Three a week: the fourth in the week is refused, the next week is open.
		for _, at := range []time.Time{w.at("2027-03-03", "09:00"), w.at("2027-03-05", "11:40")} {
			if _, err := w.book(w.ben, w.jose, at, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.book(w.cy, w.jose, w.at("2027-03-04", "09:00"), ""); !errors.Is(err, visits.ErrWeeklyLimit) {
			t.Fatalf("a fourth visit in the week: %v", err)
		}
		if _, err := w.book(w.cy, w.jose, w.at("2027-03-08", "09:00"), ""); err != nil {
			t.Fatalf("the next week: %v", err)
		}
		// Without the money the booking is refused and nothing is left behind.
		w.fund(t, w.cy, 0-w.wallet(t, w.cy)+100)
		if _, err := w.book(w.cy, w.kim, w.at("2027-03-04", "09:00"), ""); !errors.Is(err, visits.ErrNoFunds) {
			t.Fatalf("no money: %v", err)
		}
		list, err := w.visits.Visits(ctx, w.cy, "")
		if err != nil || len(list) != 1 {
			t.Fatalf("cy's visits: %d %v", len(list), err)
		}
		w.verify(t)
	})
}

// kioskNamed makes a kiosk at FSP.
func (w *bookingWorld) kioskNamed(t *testing.T, name string) string {
	t.Helper()
	k, _, err := w.fac.CreateKiosk(ctx, facility.Operator, w.fl.ID, w.fsp.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func TestPendingContactsMayNotBook(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := bookingSetup(t, db)
		_, err := w.fac.ImportRoster(ctx, facility.Operator, w.fl.ID, strings.NewReader("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
			"A100,García,José,FSP,B-1,active,\nA200,Lee,Kim,FSP,C-2,active,\nA300,Smith,Sam,FSP,C-3,active,no_video\nA400,Ng,Lan,FSP,D-1,active,\n"), facility.RosterOptions{Apply: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := w.contacts.Request(ctx, w.ana, w.resident(t, "A400"))
		if err != nil || c.Status != contacts.Pending {
			t.Fatalf("request: %+v %v", c, err)
		}
		if _, err := w.visits.Book(ctx, w.ana, visits.Booking{ContactID: c.ID, Start: w.at("2027-03-02", "10:00"), Minutes: 20}); !errors.Is(err, visits.ErrNotApproved) {
			t.Fatalf("pending contact: %v", err)
		}
		if _, err := w.visits.Offer(ctx, w.ana, c.ID, visits.Date{}, 3); !errors.Is(err, visits.ErrNotApproved) {
			t.Fatalf("pending contact's slots: %v", err)
		}
		if err := w.contacts.Decide(ctx, w.fspAdmin, c.ID, false, "Not on the list"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.visits.Book(ctx, w.ana, visits.Booking{ContactID: c.ID, Start: w.at("2027-03-02", "10:00"), Minutes: 20}); !errors.Is(err, visits.ErrNotApproved) {
			t.Fatalf("denied contact: %v", err)
		}
	})
}

// Families racing for the last station of a slot: exactly one gets it, and the
// others keep their money.
func TestOneStationOneWinner(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := bookingSetup(t, db)
		slot := w.at("2027-03-02", "09:40")
		type try struct {
			account, resident string
		}
		tries := []try{{w.ana, w.jose}, {w.ben, w.kim}, {w.cy, w.kim}, {w.ana, w.kim}, {w.ben, w.jose}, {w.cy, w.jose}}
		var wg sync.WaitGroup
		errs := make([]error, len(tries))
		start := make(chan struct{})
		for i, tr := range tries {
			wg.Go(func() {
				<-start
				_, errs[i] = w.book(tr.account, tr.resident, slot, "")
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, visits.ErrSlotTaken), errors.Is(err, visits.ErrResidentBusy):
			default:
				t.Errorf("try %d: %v", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("%d bookings won the one station: %v", won, errs)
		}
		var total int64
		for _, a := range []string{w.ana, w.ben, w.cy} {
			total += w.wallet(t, a)
		}
		if total != 3*2000-320 {
			t.Fatalf("the wallets hold %d together", total)
		}
		offer, err := w.visits.Offer(ctx, w.ana, w.contact[w.ana][w.kim], visits.DateOf(slot), 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, sl := range offer.Slots {
			if sl.Start.Equal(slot) {
				t.Fatal("the booked slot is still offered")
			}
		}
		w.verify(t)
	})
}

func TestCancellations(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := bookingSetup(t, db)
		v, err := w.book(w.ana, w.jose, w.at("2027-03-02", "09:00"), "")
		if err != nil {
			t.Fatal(err)
		}
		// The resident sees it at the kiosk, with who comes and where to be.
		coming, err := w.visits.Coming(ctx, w.jose)
		if err != nil || len(coming) != 1 || coming[0].Visitor != "Ana Family" || coming[0].Station.Location != "Housing unit B" ||
			coming[0].Start.Format("15:04 MST") != "09:00 EST" {
			t.Fatalf("coming: %+v %v", coming, err)
		}
		// The family cancels until an hour before: everything comes back.
		got, err := w.visits.Cancel(ctx, w.ana, v.ID)
		if err != nil || got.State != visits.Cancelled || w.wallet(t, w.ana) != 2000 {
			t.Fatalf("cancel: %+v %v, wallet %d", got, err, w.wallet(t, w.ana))
		}
		if _, err := w.visits.Cancel(ctx, w.ana, v.ID); !errors.Is(err, visits.ErrDecided) {
			t.Fatalf("cancelled twice: %v", err)
		}
		// The freed slot can be booked again.
		v, err = w.book(w.ben, w.jose, w.at("2027-03-02", "09:00"), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, v.ID, true, ""); err != nil {
			t.Fatal(err)
		}
		w.now = w.at("2027-03-02", "08:01")
		if _, err := w.visits.Cancel(ctx, w.ben, v.ID); !errors.Is(err, visits.ErrTooLate) {
			t.Fatalf("59 minutes before: %v", err)
		}
		if _, err := w.visits.Cancel(ctx, w.ana, v.ID); !errors.Is(err, visits.ErrNotFound) {
			t.Fatalf("another family cancels: %v", err)
		}
		// Staff may, with a reason the family reads.
		if err := w.visits.CancelByStaff(ctx, w.fspOfficer, v.ID, ""); !errors.Is(err, visits.ErrNeedReason) {
			t.Fatalf("no reason: %v", err)
		}
		if err := w.visits.CancelByStaff(ctx, w.fspOfficer, v.ID, "Facility lockdown"); err != nil {
			t.Fatal(err)
		}
		if b := w.wallet(t, w.ben); b != 2000 {
			t.Fatalf("wallet %d", b)
		}
		m := w.mails(t, "ben@example.org")
		if last := m[len(m)-1]; last.Template != "visit_cancelled" || last.Data["Reason"] != "Facility lockdown" || last.Data["When"] != "Tue Mar 2, 2027 09:00 EST" {
			t.Fatalf("mail %+v", last)
		}
		w.verify(t)
	})
}

func TestSweepEndsVisitsThatCannotHappen(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := bookingSetup(t, db)
		josé, err := w.book(w.ana, w.jose, w.at("2027-03-03", "09:00"), "")
		if err != nil {
			t.Fatal(err)
		}
		undecided, err := w.book(w.ben, w.kim, w.at("2027-03-02", "09:00"), "")
		if err != nil {
			t.Fatal(err)
		}
		missed, err := w.book(w.cy, w.kim, w.at("2027-03-02", "10:00"), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, missed.ID, true, ""); err != nil {
			t.Fatal(err)
		}
		if n, err := w.visits.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("nothing to sweep yet: %d %v", n, err)
		}
		// José is released; Tuesday passes.
		_, err = w.fac.ImportRoster(ctx, facility.Operator, w.fl.ID, strings.NewReader("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
			"A100,García,José,FSP,B-1,released,\nA200,Lee,Kim,FSP,C-2,active,\nA300,Smith,Sam,FSP,C-3,active,no_video\n"), facility.RosterOptions{Apply: true})
		if err != nil {
			t.Fatal(err)
		}
		w.now = w.at("2027-03-02", "10:30")
		if n, err := w.visits.Sweep(ctx); err != nil || n != 3 {
			t.Fatalf("swept %d: %v", n, err)
		}
		for _, c := range []struct {
			account, id, state, reason string
		}{
			{w.ana, josé.ID, visits.Cancelled, visits.ReasonReleased},
			{w.ben, undecided.ID, visits.Cancelled, visits.ReasonNotDecided},
			{w.cy, missed.ID, visits.Missed, visits.ReasonNoOneJoined},
		} {
			v, err := w.visits.Visit(ctx, c.account, c.id)
			if err != nil || v.State != c.state || v.Reason != c.reason {
				t.Errorf("%s: %s %q %v", c.id, v.State, v.Reason, err)
			}
			if b := w.wallet(t, c.account); b != 2000 {
				t.Errorf("wallet %d", b)
			}
		}
		if m := w.mails(t, "ana@example.org"); m[len(m)-1].Template != "visit_cancelled" || m[len(m)-1].Data["Reason"] != visits.ReasonReleased {
			t.Fatalf("ana's mail %+v", m[len(m)-1])
		}
		if n, err := w.visits.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("swept again: %d %v", n, err)
		}
		w.verify(t)
	})
}

func TestRemindersADayAndAnHourBefore(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := bookingSetup(t, db)
		soon, err := w.book(w.ana, w.jose, w.at("2027-03-02", "09:00"), "") // 25 hours ahead
		if err != nil {
			t.Fatal(err)
		}
		later, err := w.book(w.ben, w.kim, w.at("2027-03-04", "11:00"), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.visits.Decide(ctx, w.fspOfficer, soon.ID, true, ""); err != nil {
			t.Fatal(err)
		}
		type job struct {
			payload  string
			runAfter time.Time
		}
		rows, err := w.db.Read().QueryContext(ctx, "SELECT payload, run_after FROM jobs WHERE kind = $1 ORDER BY run_after, id", visits.ReminderJob)
		if err != nil {
			t.Fatal(err)
		}
		var due []job
		for rows.Next() {
			var j job
			if err := rows.Scan(&j.payload, &j.runAfter); err != nil {
				t.Fatal(err)
			}
			due = append(due, j)
		}
		rows.Close()
		want := []time.Time{w.at("2027-03-01", "09:00"), w.at("2027-03-02", "08:00"), w.at("2027-03-03", "11:00"), w.at("2027-03-04", "10:00")}
		if len(due) != len(want) {
			t.Fatalf("%d reminders queued", len(due))
		}
		for i, j := range due {
			if !j.runAfter.Equal(want[i]) {
				t.Errorf("reminder %d at %v, want %v", i, j.runAfter, want[i])
			}
		}
		// Ben cancels: his reminders send nothing. Ana's arrive, in her words.
		if _, err := w.visits.Cancel(ctx, w.ben, later.ID); err != nil {
			t.Fatal(err)
		}
		for _, j := range due {
			if err := w.visits.HandleReminder(ctx, []byte(j.payload)); err != nil {
				t.Fatal(err)
			}
		}
		var reminded []string
		for _, to := range []string{"ana@example.org", "ben@example.org"} {
			for _, m := range w.mails(t, to) {
				if m.Template == "visit_reminder" {
					reminded = append(reminded, to+" "+m.Data["When"])
				}
			}
		}
		if strings.Join(reminded, "; ") != "ana@example.org Tue Mar 2, 2027 09:00 EST; ana@example.org Tue Mar 2, 2027 09:00 EST" {
			t.Fatalf("reminders: %v", reminded)
		}
	})
}
