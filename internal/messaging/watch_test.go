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
		{"Перевод на русском", "оружие", false},
		{"принеси оружие", "оружие", true},
		{"Ի՞նչ կա", "զենք", false},
		{"Καλημέρα", "καλημερα", true},
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

// Look-alike letters from other scripts do not hide a phrase: "las drоgas" with a
// Cyrillic о reads as "las drogas" to the person who gets it.
func TestWatchPhrasesMatchLookAlikeLetters(t *testing.T) {
	for _, c := range []struct{ text, phrase string }{
		{"las dr\u043egas", "drogas"},        // Cyrillic о
		{"las dr\u03bfgas", "drogas"},        // Greek ο
		{"las dr\u0585gas", "drogas"},        // Armenian օ
		{"las DR\u041eGAS", "drogas"},        // Cyrillic capital О
		{"\u0455\u0435\u0445", "sex"},        // Cyrillic ѕ, е, х
		{"\u0261un", "gun"},                  // Latin script ɡ
		{"g\u057dn", "gun"},                  // Armenian ս
		{"\u0440\u0430\u0441\u0430", "paca"}, // Cyrillic р, а, с, а
		{"\u03b1rm\u03b1", "arma"},           // Greek α
		{"\U0001d5bd\U0001d5cb\U0001d5c8\U0001d5c0\U0001d5ba\U0001d5cc", "drogas"}, // mathematical sans-serif
		{"\U0001d41d\U0001d42b\U0001d428\U0001d420\U0001d41a\U0001d42c", "drogas"}, // mathematical bold
		{"\U0001d4ed\U0001d4fb\U0001d4f8\U0001d4f0\U0001d4ea\U0001d4fc", "drogas"}, // mathematical bold script
		{"cu\u0435rno", "cuerno"}, // Cyrillic е
		{"\u0430rm\u0430s y dr\u043eg\u0430s", "armas y drogas"},
		{"\u043c\u043e\u0442\u0430", "мота"}, // a phrase written in look-alikes matches itself
		{"las drogas", "las dr\u043egas"},    // and a phrase typed with one matches the plain word
	} {
		if !containsWord(foldForWatch(c.text), foldForWatch(c.phrase)) {
			t.Errorf("%q does not find %q (%q, %q)", c.text, c.phrase, foldForWatch(c.text), foldForWatch(c.phrase))
		}
	}
}

// Folding to look-alikes leaves ordinary words apart: ASCII letters stay themselves,
// so "rn" does not become "m" nor "1" an "l".
func TestWatchLookAlikesLeaveOrdinaryWordsApart(t *testing.T) {
	for _, c := range []struct{ text, phrase string }{
		{"we will burn the leaves", "bum"},
		{"the modern world", "modem"},
		{"turn left", "tum"},
		{"it costs 10 dollars", "lo"},
		{"lo siento mucho", "10"},
		{"the corn is ready", "com"},
		{"O'Neil", "0"},
		{"hermano", "herrnano"},
		{"la cama", "carna"},
		{"me llamo Nina", "nino"},
		{"ñandú", "nanda"},
		{"un arma de fuego", "alarma"},
		{"drogas", "droga"},
	} {
		if containsWord(foldForWatch(c.text), foldForWatch(c.phrase)) {
			t.Errorf("%q matched in %q (%q, %q)", c.phrase, c.text, foldForWatch(c.text), foldForWatch(c.phrase))
		}
	}
	for _, s := range []string{"las drogas", "Mamá hizo TRES LECHES.", "burn 10", "¡Fuga mañana!"} {
		if got, want := foldForWatch(s), foldWords(s); got != want {
			t.Errorf("foldForWatch(%q) = %q, want %q as before", s, got, want)
		}
	}
}
