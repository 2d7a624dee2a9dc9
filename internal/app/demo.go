package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/visits"
)

// The demo is "serve" plus demo data: an agency with two facilities and their
// residents, one staff member of each role, a kiosk, and a family account with an
// approved contact. Seeding is idempotent: a second run changes nothing and prints
// the same logins.

const (
	demoFamilyEmail    = "maria@example.org"
	demoFamilyPassword = "kinlink demo family 2026"
	demoStaffPassword  = "demo staff 2026"
	demoAgency         = "DEMO"
	demoKioskName      = "Demo kiosk"
	// demoFinanceEmail is the demo's finance officer, who also receives the daily
	// deposits report.
	demoFinanceEmail = "finance@example.org"
)

// demoStaff are the demo's staff, one per role, with fixed authenticator secrets so
// that their logins can be printed.
var demoStaff = []struct{ email, name, role, facility, secret string }{
	{"agency.admin@example.org", "Alma Reyes", facility.AgencyAdmin, "", "KINLINKDEMOAGENCYADMIN22"},
	{"facility.admin@example.org", "Frank Dorsey", facility.FacilityAdmin, "NORTH", "KINLINKDEMOFACILITYADM22"},
	{"mail.reviewer@example.org", "Mei Chen", facility.MailReviewer, "NORTH", "KINLINKDEMOMAILREVIEWER2"},
	{"visitation@example.org", "Victor Okafor", facility.VisitationOfficer, "NORTH", "KINLINKDEMOVISITATION222"},
	{"investigator@example.org", "Irene Walsh", facility.Investigator, "", "KINLINKDEMOINVESTIGATOR2"},
	{demoFinanceEmail, "Farah Nasser", facility.Finance, "", "KINLINKDEMOFINANCE222222"},
}

// demoResidents are generated from these names; the first two have PINs.
var demoFirst = strings.Fields("José María Luis Ana Carlos Rosa Miguel Lucía James Mary Robert Linda David Patricia Nguyễn Thị Kwame Aisha")
var demoLast = strings.Fields("García Rodríguez Martínez Hernández López González Smith Johnson Williams Brown Jones Davis Tran Okoye Kowalski Haddad")

type demoGuide struct {
	kioskCode string // a fresh enrolment code for the demo kiosk, if it is not enrolled
	residents [][2]string
}

// seedDemo adds the demo records that are missing.
func seedDemo(ctx context.Context, s *services) (demoGuide, error) {
	var g demoGuide
	_, err := s.id.EnsureAccount(ctx, identity.SignupRequest{
		Email: demoFamilyEmail, Password: demoFamilyPassword, FullName: "María López",
		SecurityQuestion: "first_pet", SecurityAnswer: "Canela", Locale: "es",
	})
	if err != nil {
		return g, fmt.Errorf("demo family: %w", err)
	}
	// María's wallet is funded once (the key makes a second run a no-op).
	maria, err := s.id.AccountByEmail(ctx, demoFamilyEmail)
	if err != nil {
		return g, err
	}
	if _, err := s.wallets.TopUp(ctx, maria.ID, maria.Email, maria.Locale, 5000, "tok_visa", "demo-funding"); err != nil {
		return g, fmt.Errorf("demo wallet: %w", err)
	}
	agency, err := s.fac.AgencyByCode(ctx, demoAgency)
	if errors.Is(err, facility.ErrNotFound) {
		agency, err = s.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: demoAgency, Name: "Demo State Department of Corrections", State: "TX"})
	}
	if err != nil {
		return g, fmt.Errorf("demo agency: %w", err)
	}
	facilities := map[string]facility.Facility{}
	for _, in := range []facility.FacilityInput{
		{Code: "NORTH", Name: "North Unit", Kind: "prison", TimeZone: "America/Chicago", Address: "100 Prison Road, Huntsville, TX", Population: 1250},
		{Code: "COUNTY", Name: "Demo County Jail", Kind: "jail", TimeZone: "America/Chicago", Address: "2 Court Street, Demo City, TX", Population: 320},
	} {
		f, err := s.fac.FacilityByCode(ctx, agency.ID, in.Code)
		if errors.Is(err, facility.ErrNotFound) {
			f, err = s.fac.CreateFacility(ctx, facility.Operator, agency.ID, in)
		}
		if err != nil {
			return g, fmt.Errorf("demo facility %s: %w", in.Code, err)
		}
		facilities[in.Code] = f
	}

	var roster strings.Builder
	roster.WriteString("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n")
	for i := range 36 {
		code := "NORTH"
		if i%3 == 2 {
			code = "COUNTY"
		}
		fmt.Fprintf(&roster, "D%04d,%s,%s,%s,%c-%d,active,\n", 1001+i, demoLast[i%len(demoLast)], demoFirst[i%len(demoFirst)], code, 'A'+rune(i%4), 10+i)
	}
	// The roster is loaded once: later runs keep what people changed since.
	if known, err := s.fac.SearchResidents(ctx, facility.ResidentSearch{AgencyCode: demoAgency, Number: "D1001"}); err != nil {
		return g, fmt.Errorf("demo roster: %w", err)
	} else if len(known) == 0 {
		if _, err := s.fac.ImportRoster(ctx, facility.Operator, agency.ID, strings.NewReader(roster.String()), facility.RosterOptions{Apply: true}); err != nil {
			return g, fmt.Errorf("demo roster: %w", err)
		}
	}

	var facilityAdmin, agencyAdmin, mailReviewer string
	for _, st := range demoStaff {
		id, err := s.id.EnsureStaff(ctx, st.email, st.name, demoStaffPassword, st.secret)
		if err != nil {
			return g, fmt.Errorf("demo staff %s: %w", st.email, err)
		}
		facilityID := ""
		if st.facility != "" {
			facilityID = facilities[st.facility].ID
		}
		if err := s.fac.GrantRole(ctx, facility.Operator, agency.ID, id, st.role, facilityID); err != nil {
			return g, fmt.Errorf("demo staff %s: %w", st.email, err)
		}
		switch st.role {
		case facility.FacilityAdmin:
			facilityAdmin = id
		case facility.AgencyAdmin:
			agencyAdmin = id
		case facility.MailReviewer:
			mailReviewer = id
		}
	}

	// Two residents with PINs, and María's approved contact with the first.
	for _, r := range [][2]string{{"D1001", "4826"}, {"D1002", "5937"}} {
		found, err := s.fac.SearchResidents(ctx, facility.ResidentSearch{AgencyCode: demoAgency, Number: r[0]})
		if err != nil {
			return g, fmt.Errorf("demo resident %s: %w", r[0], err)
		}
		if len(found) != 1 {
			// Someone trying the demo released them (a roster applied in the portal):
			// the demo keeps what people changed, so it cannot set itself up again.
			return g, fmt.Errorf("the demo data in %s was changed: resident %s is no longer at a facility (a roster applied in the demo released them). "+
				"To start the demo afresh, stop it and delete that folder, or run it with another one: KINLINK_DATA_DIR=./demo-data go run ./cmd/kinlink demo",
				s.cfg.DataDir, r[0])
		}
		if err := s.fac.SetDemoPIN(ctx, found[0].ID, r[1]); err != nil && !errors.Is(err, facility.ErrPINSet) {
			return g, fmt.Errorf("demo PIN: %w", err)
		}
		g.residents = append(g.residents, [2]string{r[0] + " (" + found[0].FirstName + " " + found[0].LastName + ")", r[1]})
		if r[0] == "D1001" {
			c, err := s.contacts.Request(ctx, maria.ID, found[0].ID)
			if err != nil {
				return g, fmt.Errorf("demo contact: %w", err)
			}
			if c.Status == contacts.Pending {
				access := facility.Access{AccountID: facilityAdmin, AgencyID: agency.ID, Grants: []facility.Grant{{Role: facility.FacilityAdmin, FacilityID: facilities["NORTH"].ID}}}
				if err := s.contacts.Decide(ctx, access, c.ID, true, ""); err != nil {
					return g, fmt.Errorf("demo contact: %w", err)
				}
			}
			admin := facility.Access{AccountID: agencyAdmin, AgencyID: agency.ID, Grants: []facility.Grant{{Role: facility.AgencyAdmin}}}
			reviewer := facility.Access{AccountID: mailReviewer, AgencyID: agency.ID, Grants: []facility.Grant{{Role: facility.MailReviewer, FacilityID: facilities["NORTH"].ID}}}
			if err := seedConversation(ctx, s, admin, reviewer, maria.ID, found[0].ID, c.ID); err != nil {
				return g, fmt.Errorf("demo messages: %w", err)
			}
		}
	}

	k, err := s.fac.KioskByName(ctx, facilities["NORTH"].ID, demoKioskName)
	switch {
	case errors.Is(err, facility.ErrNotFound):
		k, g.kioskCode, err = s.fac.CreateKiosk(ctx, facility.Operator, agency.ID, facilities["NORTH"].ID, demoKioskName)
	case err == nil && !k.Enrolled && !k.Revoked:
		g.kioskCode, err = s.fac.RenewEnrolCode(ctx, facility.Operator, agency.ID, k.ID)
	}
	if err != nil {
		return g, fmt.Errorf("demo kiosk: %w", err)
	}
	admin := facility.Access{AccountID: agencyAdmin, AgencyID: agency.ID, Grants: []facility.Grant{{Role: facility.AgencyAdmin}}}
	if err := seedVisitSchedule(ctx, s, admin, facilities["NORTH"].ID, k); err != nil {
		return g, fmt.Errorf("demo visit schedule: %w", err)
	}
	if err := seedDepositPolicy(ctx, s, admin); err != nil {
		return g, fmt.Errorf("demo deposit policy: %w", err)
	}
	return g, nil
}

// seedDepositPolicy gives the demo agency the default deposit limits, no fee, and
// the finance officer's address for the daily report. A policy someone saved is
// kept.
func seedDepositPolicy(ctx context.Context, s *services, admin facility.Access) error {
	p, err := s.deposits.Policy(ctx, admin.AgencyID)
	if err != nil || !reflect.DeepEqual(p, deposits.DefaultPolicy()) {
		return err
	}
	p.FinanceEmail = demoFinanceEmail
	return s.deposits.SetPolicy(ctx, admin, admin.AgencyID, p)
}

// seedVisitSchedule opens North Unit for video visits at the demo kiosk, every
// day 09:00–12:00 and 13:00–20:00 in 20-minute slots at 12¢ a minute, bookable
// from two hours ahead (so a visit can be tried the same day), approved by the
// visitation officer. A schedule someone saved is kept.
func seedVisitSchedule(ctx context.Context, s *services, admin facility.Access, facilityID string, k facility.Kiosk) error {
	sch, err := s.visits.Schedule(ctx, facilityID)
	if err != nil || len(sch.Hours) > 0 {
		return err
	}
	sch.MinLeadHours, sch.RateMills = 2, 120
	for d := time.Sunday; d <= time.Saturday; d++ {
		sch.Hours = append(sch.Hours, visits.Hours{Weekday: d, Start: 9 * 60, End: 12 * 60}, visits.Hours{Weekday: d, Start: 13 * 60, End: 20 * 60})
	}
	if err := s.visits.SetSchedule(ctx, admin, facilityID, sch); err != nil {
		return err
	}
	if k.Revoked {
		return nil
	}
	return s.visits.SetStation(ctx, admin, k.ID, true, "Unit A day room")
}

// seedConversation gives the demo agency a watch list and María a conversation
// with a reply and a photo (approved by the mail reviewer), plus two messages
// waiting in the review queue. Fixed keys make a second run a no-op; a watch list
// someone edited is kept.
func seedConversation(ctx context.Context, s *services, admin, reviewer facility.Access, familyID, residentID, contactID string) error {
	review, err := s.messages.Review(ctx, admin.AgencyID)
	if err != nil {
		return err
	}
	if len(review.Phrases) == 0 {
		review.Phrases = []string{"contraband", "escape", "weapon", "drugs", "contrabando", "fuga", "arma", "drogas"}
		review.VideoGramReplies = true // José can answer María's VideoGram with one
		if err := s.messages.SetReview(ctx, admin, review); err != nil {
			return err
		}
	}
	if _, err := s.messages.Send(ctx, familyID, contactID, messaging.Draft{Text: "Hola mijo. Tu hermana ya empezó la escuela y te manda un abrazo. ¿Cómo estás? 💛", Key: "demo-1"}); err != nil {
		return err
	}
	if _, err := s.messages.Reply(ctx, residentID, contactID, messaging.ReplyDraft{
		Text: "Hola mamá. Estoy bien, trabajando en la cocina. Dile a Sofi que estoy orgulloso de ella.", Key: "demo-reply-1"}); err != nil {
		return err
	}
	// A photo waits for review like every photo; the reviewer approved this one.
	photo, err := s.messages.Send(ctx, familyID, contactID, messaging.Draft{Text: "Sofi en su primer día de escuela 🎒", Key: "demo-photo-1",
		Photos: []media.Upload{demoPhoto{}}})
	if err != nil {
		return err
	}
	if photo.State == messaging.InReview {
		if err := s.messages.Decide(ctx, reviewer, photo.ID, true, "", ""); err != nil {
			return err
		}
	}
	_, err = s.messages.Send(ctx, familyID, contactID, messaging.Draft{Text: "Tu tío dice que las drogas de la clínica ya están pagadas, no te preocupes.", Key: "demo-2"})
	if err != nil {
		return err
	}
	// A second one waits behind it ("fuga" is a leak here), so a reviewer can go
	// from one to the next.
	_, err = s.messages.Send(ctx, familyID, contactID, messaging.Draft{Text: "El plomero por fin arregló la fuga del baño. Ya no gotea y la casa está tranquila.", Key: "demo-3"})
	return err
}

// printDemoGuide tells the person who ran "kinlink demo" how to try it.
func printDemoGuide(s *services, g demoGuide, out io.Writer) {
	base := s.cfg.BaseURL
	fmt.Fprintf(out, "\nKinlink demo\n")
	fmt.Fprintf(out, "  Open %s in your browser.\n\n", base)
	fmt.Fprintf(out, "  Family login (%s/login): %s / %s (security answer: Canela)\n", base, demoFamilyEmail, demoFamilyPassword)
	fmt.Fprintf(out, "\n  Staff portal (%s/facility), password %q for everyone; each needs a code from an\n", base, demoStaffPassword)
	fmt.Fprintf(out, "  authenticator app set up with their secret (or: oathtool --totp -b SECRET):\n")
	for _, st := range demoStaff {
		code, _ := totp.GenerateCode(st.secret, time.Now())
		fmt.Fprintf(out, "    %-20s %-28s secret %s (code now: %s)\n", st.role, st.email, st.secret, code)
	}
	fmt.Fprintf(out, "\n  Kiosk (%s/kiosk): ", base)
	if g.kioskCode != "" {
		fmt.Fprintf(out, "enrol this browser with code %s (valid 24 hours)\n", g.kioskCode)
	} else {
		fmt.Fprintf(out, "the demo kiosk is already enrolled; enrol another device from the portal's Kiosks page\n")
	}
	for _, r := range g.residents {
		fmt.Fprintf(out, "    resident %s, PIN %s\n", r[0], r[1])
	}
	if s.outbox != "" {
		dir, err := filepath.Abs(s.outbox)
		if err != nil {
			dir = s.outbox
		}
		fmt.Fprintf(out, "\n  No mail is sent: every email is written as an .eml file to %s\n", dir)
	} else {
		fmt.Fprintf(out, "\n  Mail goes out through %s:%d.\n", s.cfg.SMTPHost, s.cfg.SMTPPort)
	}
	fmt.Fprintf(out, "  Stop with Ctrl+C. Data is kept in %s.\n\n", s.cfg.DataDir)
}

// demoPhoto is the demo's photo: a picture drawn here (a sky, a sun and a hill), so
// that the demo ships no image file.
type demoPhoto struct{}

func (demoPhoto) Name() string { return "escuela.jpg" }

func (demoPhoto) Open() (io.ReadCloser, error) {
	const w, h = 960, 720
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			dx, dy := x-700, y-200
			hill := 480 + 60*math.Sin(float64(x)/160)
			switch {
			case dx*dx+dy*dy < 80*80: // the sun
				img.Set(x, y, color.RGBA{255, 204, 64, 255})
			case float64(y) > hill: // the hill
				img.Set(x, y, color.RGBA{uint8(60 + y/12), uint8(140 + y/16), 70, 255})
			default: // the sky, lighter toward the horizon
				img.Set(x, y, color.RGBA{uint8(90 + y/4), uint8(150 + y/8), 235, 255})
			}
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return io.NopCloser(&b), nil
}
