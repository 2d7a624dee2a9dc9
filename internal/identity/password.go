package identity

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Password limits (NIST SP 800-63B): length is what makes a password strong, so there
// are no composition rules, only a minimum, a generous maximum and a list of
// passwords that attackers try first.
const (
	MinPasswordFamily = 15   // when the password is the only factor
	MinPasswordMFA    = 8    // for accounts that always use a second factor (staff)
	MaxPasswordBytes  = 1024 // refused before hashing: hashing is the costly part
)

// Reasons a password is refused. They are stable codes: the API returns them and the
// pages translate them.
const (
	ReasonTooShort   = "too_short"
	ReasonTooLong    = "too_long"
	ReasonCommon     = "common"
	ReasonContext    = "context"
	ReasonRepetitive = "repetitive"
)

// ServiceName is a context word no password may lean on.
const ServiceName = "kinlink"

//go:embed passwords/common.txt.gz
var commonFile embed.FS

// CommonPasswords is the shipped list of common and breached passwords, lower-cased
// and sorted, held as one string with line offsets: a map of 200,000 strings would
// cost several times the memory.
type CommonPasswords struct {
	data    string
	offsets []int32 // start of each line; the line ends before the next offset - 1
}

// LoadCommonPasswords reads the embedded list.
func LoadCommonPasswords() (*CommonPasswords, error) {
	f, err := commonFile.Open("passwords/common.txt.gz")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("identity: common passwords: %w", err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(zr); err != nil {
		return nil, fmt.Errorf("identity: common passwords: %w", err)
	}
	c := &CommonPasswords{data: buf.String()}
	sc := bufio.NewScanner(strings.NewReader(c.data))
	pos := int32(0)
	for sc.Scan() {
		c.offsets = append(c.offsets, pos)
		pos += int32(len(sc.Bytes())) + 1
	}
	if !sort.SliceIsSorted(c.offsets, func(i, j int) bool { return c.line(i) < c.line(j) }) {
		return nil, fmt.Errorf("identity: common passwords list is not sorted")
	}
	return c, nil
}

func (c *CommonPasswords) line(i int) string {
	end := len(c.data)
	if i+1 < len(c.offsets) {
		end = int(c.offsets[i+1])
	}
	return strings.TrimSuffix(c.data[c.offsets[i]:end], "\n")
}

// Len is the number of entries.
func (c *CommonPasswords) Len() int { return len(c.offsets) }

// Contains reports whether the lower-cased password is on the list.
func (c *CommonPasswords) Contains(lower string) bool {
	i := sort.Search(len(c.offsets), func(i int) bool { return c.line(i) >= lower })
	return i < len(c.offsets) && c.line(i) == lower
}

// NormalizePassword applies Unicode NFKC, so that the same password typed on two
// keyboards (composed or decomposed accents, full-width digits) is the same.
func NormalizePassword(p string) string { return norm.NFKC.String(p) }

// NormalizeAnswer makes security answers forgiving: NFKC, case-folded, spaces collapsed.
func NormalizeAnswer(a string) string {
	return strings.Join(strings.Fields(cases.Fold().String(norm.NFKC.String(a))), " ")
}

// NormalizeEmail is the form emails are stored, compared and throttled in.
func NormalizeEmail(e string) string {
	return strings.ToLower(strings.TrimSpace(norm.NFC.String(e)))
}

// CheckPassword returns why a password is refused, or nil. min is the minimum length
// in characters; context holds words of this account (its email, its name) that a
// password must not lean on.
func (c *CommonPasswords) CheckPassword(password string, min int, context ...string) []string {
	if len(password) > MaxPasswordBytes {
		return []string{ReasonTooLong}
	}
	p := NormalizePassword(password)
	var reasons []string
	if n := len([]rune(p)); n < min {
		reasons = append(reasons, ReasonTooShort)
	}
	lower := strings.ToLower(p)
	if c.Contains(lower) || c.Contains(strings.Join(strings.Fields(lower), "")) {
		reasons = append(reasons, ReasonCommon)
	}
	if distinct(lower) < 4 {
		reasons = append(reasons, ReasonRepetitive)
	}
	// Context words may appear in a long passphrase; it is refused when what is left
	// without all of them, and without the marks between them, would be too short or
	// common: "ana.garcia@example.org" is no password for Ana García.
	rest, leans := lower, false
	for _, w := range append([]string{ServiceName}, contextWords(context)...) {
		if strings.Contains(rest, w) {
			rest, leans = strings.ReplaceAll(rest, w, ""), true
		}
	}
	if leans {
		rest = strings.TrimSpace(strings.Map(func(r rune) rune {
			if strings.ContainsRune(emailMarks, r) {
				return -1
			}
			return r
		}, rest))
		if len([]rune(rest)) < min || c.Contains(rest) || distinct(rest) < 4 {
			reasons = append(reasons, ReasonContext)
		}
	}
	return reasons
}

// emailMarks join the words of an address; what is left of a password without its
// context words does not count them.
const emailMarks = ".@_-+"

// contextWords splits emails and names into words worth checking: the email's local
// part and domain name, and name parts of three letters or more.
func contextWords(context []string) []string {
	var out []string
	for _, s := range context {
		s = strings.ToLower(NormalizePassword(s))
		if local, domain, ok := strings.Cut(s, "@"); ok {
			s = local + " " + strings.Split(domain, ".")[0]
		}
		for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || strings.ContainsRune(emailMarks, r) }) {
			if len([]rune(w)) >= 3 {
				out = append(out, w)
			}
		}
	}
	return out
}

func distinct(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}
