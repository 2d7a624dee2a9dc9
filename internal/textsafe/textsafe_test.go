package textsafe

import "testing"

func TestHidden(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"Ana García", false},
		{"Ana\u202eaicraG", true}, // right-to-left override
		{"Ana\u202dGarcía", true}, // left-to-right override
		{"Ana\u2067García", true}, // isolate
		{"Ana\u200fGarcía", true}, // right-to-left mark
		{"Ana\u200bGarcía", true}, // zero-width space
		{"Ana\u00adGarcía", true}, // soft hyphen
		{"\ufeffAna", true},       // byte-order mark
		{"Ana\x01", true},         // control
		{"می\u200cخواهم", false},  // the zero-width non-joiner Persian writes inside words
		{"क्\u200dष", false},      // the zero-width joiner
		{"محمد علي", false},
	} {
		if got := HasHidden(c.s); got != c.want {
			t.Errorf("HasHidden(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"  Ana García ": "Ana García",
		"Ｊｏｓｅ":          "Jose",
		"Jose\u0301":    "José",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

// Cells that a spreadsheet would run as formulas are written as text; numbers,
// negative amounts in a money report among them, stay numbers.
func TestSpreadsheetCell(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"Ana García":        "Ana García",
		"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")",
		"+1":                "'+1",
		"-1+1":              "'-1+1",
		"@SUM(A1)":          "'@SUM(A1)",
		"\tx":               "'\tx",
		"-20.00":            "-20.00",
		"-5":                "-5",
		"20.00":             "20.00",
		"-.5":               "'-.5",
		"-5.":               "'-5.",
		"-1.2.3":            "'-1.2.3",
		"-":                 "'-",
		"- 5":               "'- 5",
	} {
		if got := SpreadsheetCell(in); got != want {
			t.Errorf("SpreadsheetCell(%q) = %q, want %q", in, got, want)
		}
	}
}
