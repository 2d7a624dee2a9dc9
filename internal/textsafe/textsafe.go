// Package textsafe holds the rules for text one person types and other people read:
// which characters it may not hold, and the form a name is kept in. Roster imports,
// family sign-ups and staff accounts follow the same rule through it.
package textsafe

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Hidden reports characters that text shown to other people (names, roster fields,
// reasons, notes) may not hold: controls, and the invisible format characters that
// change how text shows without showing themselves (direction marks, overrides and
// isolates, zero-width space, soft hyphen, byte-order mark: Unicode's Cf). A
// right-to-left override (U+202E) in a name makes "Ana\u202Eaicrag" show as
// "Anagarcia" backwards, and turns the text after it around on every page that
// shows the name. The joiners that some scripts need inside words (U+200C, U+200D)
// are allowed.
func Hidden(r rune) bool {
	return unicode.IsControl(r) || (unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d')
}

// HasHidden reports whether s holds a Hidden character.
func HasHidden(s string) bool { return strings.ContainsFunc(s, Hidden) }

// Name is a typed name as it is kept: without surrounding spaces, and in
// compatibility-normal form (NFKC), so full-width letters from an input method,
// ligatures and the like show and match as the letters a keyboard types. Check
// HasHidden first: Name does not remove anything.
func Name(s string) string { return strings.TrimSpace(norm.NFKC.String(s)) }

// SpreadsheetCell makes a cell of a CSV file safe to open in a spreadsheet: one
// that begins as a formula would (=, +, -, @, or a tab or carriage return) is
// written after an apostrophe, which spreadsheets show as text (OWASP's CSV
// injection advice). A plain number, negative ones included ("-20.00"), is left as
// it is: it cannot be a formula, and a money report must add up.
func SpreadsheetCell(cell string) string {
	if cell == "" || !strings.ContainsRune("=+-@\t\r", rune(cell[0])) || plainNumber(cell) {
		return cell
	}
	return "'" + cell
}

// plainNumber reports "-12" or "-12.34": a minus, digits, at most one point.
func plainNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	digits := func(p string) bool {
		return p != "" && strings.IndexFunc(p, func(r rune) bool { return r < '0' || r > '9' }) < 0
	}
	return digits(whole) && (frac == "" && !strings.Contains(s, ".") || digits(frac))
}
