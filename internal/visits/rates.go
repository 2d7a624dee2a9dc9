package visits

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// RateCap is the most a minute of video may cost at the facilities of a kind
// (prison or jail) with at least MinPopulation people on an average day, in mills
// (tenths of a cent).
type RateCap struct {
	Kind          string
	MinPopulation int
	Mills         int
}

// RateCaps are the caps in force, which regulators change by order: they are
// configuration (KINLINK_VISIT_RATE_CAPS), never code.
type RateCaps []RateCap

// DefaultRateCaps are the interim caps of FCC order 24-75 (2024): prisons $0.16 a
// minute; jails $0.11 (1,000 people or more), $0.12 (350–999), $0.14 (100–349),
// $0.25 (under 100). Order 25-75 replaced them from April 2026; an operator sets
// the caps that bind the facilities served.
const DefaultRateCaps = "prison=0.16 jail:1000=0.11 jail:350=0.12 jail:100=0.14 jail=0.25"

// ParseRateCaps reads caps written as space- or comma-separated entries
// KIND[:MIN_POPULATION]=DOLLARS, e.g. "prison=0.16 jail:1000=0.11 jail=0.25", with
// dollars to the tenth of a cent.
func ParseRateCaps(s string) (RateCaps, error) {
	var caps RateCaps
	for _, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
		target, price, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("visit rate cap %q: not KIND[:MIN_POPULATION]=DOLLARS", entry)
		}
		c := RateCap{Kind: target}
		if kind, pop, ok := strings.Cut(target, ":"); ok {
			n, err := strconv.Atoi(pop)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("visit rate cap %q: the population %q is not a whole number", entry, pop)
			}
			c.Kind, c.MinPopulation = kind, n
		}
		if c.Kind != "prison" && c.Kind != "jail" {
			return nil, fmt.Errorf("visit rate cap %q: the kind is prison or jail", entry)
		}
		mills, err := parseMills(price)
		if err != nil {
			return nil, fmt.Errorf("visit rate cap %q: %w", entry, err)
		}
		c.Mills = mills
		if slices.ContainsFunc(caps, func(o RateCap) bool { return o.Kind == c.Kind && o.MinPopulation == c.MinPopulation }) {
			return nil, fmt.Errorf("visit rate cap %q: given twice", entry)
		}
		caps = append(caps, c)
	}
	return caps, nil
}

// ParseRate reads a price a minute as a person types it in dollars ("0.12",
// "$0.125", ".16", "0", and "0,12" where a comma is the decimal mark), to the tenth
// of a cent, as mills. Anything else (more decimals, a sign, letters, more than
// $10) is an error.
func ParseRate(dollars string) (int, error) {
	d := strings.TrimPrefix(strings.TrimSpace(dollars), "$")
	if strings.Count(d, ",") == 1 && !strings.Contains(d, ".") {
		d = strings.Replace(d, ",", ".", 1)
	}
	return parseMills(d)
}

// parseMills reads dollars to the tenth of a cent ("0.16", "0.125", "1") as mills.
func parseMills(dollars string) (int, error) {
	whole, frac, _ := strings.Cut(dollars, ".")
	if len(frac) > 3 || whole == "" && frac == "" {
		return 0, fmt.Errorf("%q is not dollars to the tenth of a cent", dollars)
	}
	frac += strings.Repeat("0", 3-len(frac))
	w, err1 := strconv.Atoi(orZero(whole))
	f, err2 := strconv.Atoi(frac)
	if err1 != nil || err2 != nil || w < 0 || w > 10 || strings.ContainsAny(dollars, "+-") {
		return 0, fmt.Errorf("%q is not dollars to the tenth of a cent (at most $10)", dollars)
	}
	return w*1000 + f, nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// For is the cap of a facility of kind with population people on an average day:
// the entry of its kind with the highest MinPopulation it reaches. ok is false when
// no entry covers it; then no rate but 0 may be charged.
func (c RateCaps) For(kind string, population int) (mills int, ok bool) {
	best := -1
	for _, r := range c {
		if r.Kind == kind && r.MinPopulation <= population && r.MinPopulation > best {
			best, mills, ok = r.MinPopulation, r.Mills, true
		}
	}
	return mills, ok
}

// PriceCents is what minutes of video cost at a rate in mills a minute, in whole
// cents rounded down: a fraction of a cent is never the family's to pay.
func PriceCents(rateMills, minutes int) int64 { return int64(rateMills) * int64(minutes) / 10 }

// RateDollars writes a rate in mills as dollars: "$0.16", "$0.125".
func RateDollars(mills int) string {
	return strings.TrimSuffix(fmt.Sprintf("$%d.%03d", mills/1000, mills%1000), "0")
}
