package messaging

import "testing"

func TestWatchPhrasesMatchWholeWordsIgnoringCaseAndAccents(t *testing.T) {
	for _, c := range []struct {
		text, phrase string
		want         bool
	}{
		{"Bring the GUN tonight.", "gun", true},
		{"The work has begun.", "gun", false},
		{"gunpowder", "gun", false},
		{"gun", "gun", true},
		{"bring the g\u200bu\u00adn", "gun", true}, // invisible characters do not hide a phrase
		{"bring the ＧＵＮ", "gun", true},             // nor fullwidth, circled or mathematical letters
		{"bring the ⓖⓤⓝ", "gun", true},
		{"bring the 𝐠𝐮𝐧", "gun", true},
		{"ＢＥＧＵＮ", "gun", false},
		{"¡Fuga mañana!", "fuga", true},
		{"Mamá hizo TRES LECHES.", "tres leches", true},
		{"tres  leches", "tres leches", true}, // extra spacing does not hide a phrase
		{"café", "cafe", true},
		{"el cafetal", "cafe", false},
		{"drogas, drogas", "drogas", true},
		{"bigun gun", "gun", true}, // a later occurrence counts
		{"كلمة سلاح هنا", "سلاح", true},
		{"把武器带来", "武器", true}, // Chinese has no spaces between words: the phrase matches where it occurs
		{"ยาเสพติดอยู่ที่นี่", "ยาเสพติด", true},
	} {
		got := containsWord(foldForWatch(c.text), foldForWatch(c.phrase))
		if got != c.want {
			t.Errorf("%q in %q: %v, want %v", c.phrase, c.text, got, c.want)
		}
	}
}

// Text is kept as written, in any script, except what could show a reader other
// words than the stored ones, or break a line differently on another system.
func TestMessageTextIsNormalized(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"مرحبا يا بني", "مرحبا يا بني"},
		{"Jose\u0301", "José"},                         // accents composed
		{"uno\r\ndos\rtres", "uno\ndos\ntres"},         // any system's line breaks
		{"bring the \u202enug\u202c", "bring the nug"}, // an override would show "gun"
		{"\u2067שלום\u2069 hi", "שלום hi"},             // isolates too
		{"left\u200eright", "left\u200eright"},         // a direction mark reorders nothing: kept
	} {
		if got, err := normalizeText(c.in); err != nil || got != c.want {
			t.Errorf("normalizeText(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := normalizeText("bell \a"); err != ErrBadText {
		t.Errorf("a control character: %v", err)
	}
}
