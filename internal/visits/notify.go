package visits

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/ledger"
	kmail "github.com/kinlink/kinlink/internal/mail"
)

// mailOf is the mail that tells a family a visit is in a state: booked (requested
// or scheduled at once), approved, rejected or cancelled.
func mailOf(v Visit, booking bool) string {
	switch {
	case booking:
		return "visit_booked"
	case v.State == Scheduled:
		return "visit_approved"
	case v.State == Rejected:
		return "visit_rejected"
	}
	return "visit_cancelled"
}

// tellFamily mails the family of a visit what became of it, in their language,
// on the facility's clock, with the visit as a calendar file.
func (s *Service) tellFamily(ctx context.Context, tx *sql.Tx, v Visit) error {
	return s.mailFamily(ctx, tx, v, mailOf(v, false))
}

func (s *Service) mailFamily(ctx context.Context, tx *sql.Tx, v Visit, template string) error {
	var email, locale string
	if err := tx.QueryRowContext(ctx, "SELECT email, locale FROM accounts WHERE id = $1", v.AccountID).Scan(&email, &locale); err != nil {
		return fmtErr("mail the family", err)
	}
	p, err := s.place(ctx, v.FacilityID)
	if err != nil {
		return err
	}
	r, err := s.fac.Resident(ctx, v.ResidentID)
	if err != nil {
		return err
	}
	start, end := v.Start.In(p.loc), v.End.In(p.loc)
	name := r.FirstName + " " + r.LastName
	data := map[string]string{
		"Resident": name, "Facility": p.Name, "When": i18n.Local(locale, start), "Minutes": strconv.Itoa(v.Minutes),
		"State": v.State, "Reason": v.Reason, "VisitID": v.ID, "Held": ledger.Dollars(v.HeldCents),
	}
	if v.HeldCents == 0 {
		data["Held"] = ""
	}
	// What a visit that took place cost: the minutes connected, rounded up.
	data["EndedBy"], data["StaffReason"], data["Charged"], data["Released"] = v.EndedBy, "", "", ""
	data["ConnectedMinutes"] = strconv.Itoa(int((v.Connected + time.Minute - 1) / time.Minute))
	if v.EndedBy == "staff" {
		data["StaffReason"] = v.Reason
	}
	if v.ChargedCents > 0 {
		data["Charged"] = ledger.Dollars(v.ChargedCents)
	}
	if rest := v.HeldCents - v.ChargedCents; rest > 0 && v.State == Completed {
		data["Released"] = ledger.Dollars(rest)
	}
	return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: email, Template: template, Locale: locale, Data: data,
		Attachments: []kmail.Attachment{calendarFile(v, start, end, name, p.Name, s.now())}})
}

// calendarFile is a visit as an iCalendar (RFC 5545) event. Times are in UTC
// ("…Z"): a local time with a zone would be read as the first of a time the clock
// shows twice, while the facility means the second (see Slots). A booked visit is
// published; a rejected or cancelled one cancels the same event (its UID), with a
// higher sequence, so calendars remove it.
func calendarFile(v Visit, start, end time.Time, resident, facility string, now time.Time) kmail.Attachment {
	method, status, sequence := "PUBLISH", "CONFIRMED", 1
	switch v.State {
	case Requested:
		status, sequence = "TENTATIVE", 0
	case Rejected, Cancelled, Missed, Failed:
		method, status, sequence = "CANCEL", "CANCELLED", 2
	}
	stamp := func(t time.Time) string { return t.UTC().Format("20060102T150405Z") }
	lines := []string{
		"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Kinlink//Video visits//EN", "CALSCALE:GREGORIAN", "METHOD:" + method,
		"BEGIN:VEVENT",
		"UID:visit-" + v.ID + "@kinlink",
		"SEQUENCE:" + strconv.Itoa(sequence),
		"DTSTAMP:" + stamp(now),
		"DTSTART:" + stamp(start),
		"DTEND:" + stamp(end),
		"SUMMARY:" + icsText("Video visit with "+resident),
		"LOCATION:" + icsText(facility),
		"STATUS:" + status,
		"END:VEVENT", "END:VCALENDAR",
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(fold(l))
		b.WriteString("\r\n")
	}
	return kmail.Attachment{Name: "visit.ics", ContentType: "text/calendar; charset=utf-8; method=" + method, Body: b.String()}
}

// icsText escapes a TEXT value (RFC 5545 §3.3.11).
func icsText(s string) string {
	return strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\n", `\n`, "\r", "").Replace(s)
}

// fold breaks a content line into lines of at most 75 octets, continued with a
// space, without splitting a character (RFC 5545 §3.1).
func fold(line string) string {
	if len(line) <= 75 {
		return line
	}
	var b strings.Builder
	n := 0
	for _, r := range line {
		size := len(string(r))
		if n+size > 75 {
			b.WriteString("\r\n ")
			n = 1
		}
		b.WriteRune(r)
		n += size
	}
	return b.String()
}
