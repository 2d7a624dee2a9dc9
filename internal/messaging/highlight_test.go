package messaging

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// marked writes passages as a test reads them: watched stretches in [brackets].
func marked(ps []Passage) string {
	var b strings.Builder
	for _, p := range ps {
		if p.Watch {
			b.WriteString("[" + p.Text + "]")
		} else {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func phrasesOf(ps ...string) []watchPhrase {
	var out []watchPhrase
	for _, p := range ps {
		out = append(out, watchPhrase{phrase: p, folded: foldForWatch(p)})
	}
	return out
}

// The words the watch list matched are marked in the text as written, whatever the
// fold changed on the way: accents, case, look-alike letters of other scripts,
// spacing, invisible characters, compatibility forms.
func TestWatchWordsAreMarkedInTheTextAsWritten(t *testing.T) {
	for _, c := range []struct {
		text    string
		phrases []string
		want    string
		found   []string
	}{
		{"Bring the GUN tonight.", []string{"gun"}, "Bring the [GUN] tonight.", []string{"gun"}},
		{"The work has begun.", []string{"gun"}, "The work has begun.", nil},
		// Accents: in the text, in the phrase, composed or not.
		{"¡Fuga mañana! La FÚGA.", []string{"fuga"}, "¡[Fuga] mañana! La [FÚGA].", []string{"fuga"}},
		{"Ya pagué la fuga\u0301 del baño", []string{"fuga"}, "Ya pagué la [fuga\u0301] del baño", []string{"fuga"}},
		{"el cafe esta listo", []string{"café"}, "el [cafe] esta listo", []string{"café"}},
		// A Cyrillic о among Latin letters: the mark covers the word as written.
		{"las dr\u043egas ya llegaron", []string{"drogas"}, "las [dr\u043egas] ya llegaron", []string{"drogas"}},
		{"las DR\u041e\u0301GAS", []string{"drogas"}, "las [DR\u041e\u0301GAS]", []string{"drogas"}},
		// A phrase over two words, whatever the spacing between them.
		{"Mamá hizo TRES  LECHES.", []string{"tres leches"}, "Mamá hizo [TRES  LECHES].", []string{"tres leches"}},
		{"un pastel de tres\nleches y más", []string{"tres leches"}, "un pastel de [tres\nleches] y más", []string{"tres leches"}},
		{"tres\u00a0\u3000leches", []string{"tres leches"}, "[tres\u00a0\u3000leches]", []string{"tres leches"}},
		// Invisible characters inside a word are inside its mark.
		{"bring the g\u200bu\u00adn now", []string{"gun"}, "bring the [g\u200bu\u00adn] now", []string{"gun"}},
		// Compatibility forms: each folds to several letters or one.
		{"bring the ＧＵＮ and 𝐠𝐮𝐧", []string{"gun"}, "bring the [ＧＵＮ] and [𝐠𝐮𝐧]", []string{"gun"}},
		{"the ﬁre is out", []string{"fire"}, "the [ﬁre] is out", []string{"fire"}},
		// Every occurrence, of every phrase, in the order they appear; overlapping
		// phrases make one mark.
		{"arma, drogas y más armas; arma", []string{"drogas", "arma"}, "[arma], [drogas] y más armas; [arma]", []string{"arma", "drogas"}},
		{"tres leches leches", []string{"tres leches", "leches"}, "[tres leches] [leches]", []string{"tres leches", "leches"}},
		{"Tres leches.", []string{"leches", "tres leches"}, "[Tres leches].", []string{"tres leches", "leches"}},
		// Scripts written without spaces match anywhere.
		{"把武器带来", []string{"武器"}, "把[武器]带来", []string{"武器"}},
		{"", []string{"gun"}, "", nil},
	} {
		ps, found := watchPassages(c.text, phrasesOf(c.phrases...))
		if got := marked(ps); got != c.want || !slices.Equal(found, c.found) {
			t.Errorf("%q with %q: %q %q, want %q %q", c.text, c.phrases, got, found, c.want, c.found)
		}
		var all strings.Builder
		for _, p := range ps {
			all.WriteString(p.Text)
		}
		if all.String() != c.text {
			t.Errorf("%q: the passages say %q", c.text, all.String())
		}
	}
}

// The mapped fold is the fold: the same text as foldForWatch for any input, and a
// map that points into the original at rune boundaries, in order.
func FuzzFoldMapped(f *testing.F) {
	for _, s := range []string{
		"", " ", "  a  ", "Bring the GUN tonight.", "Jose\u0301", "e\u200b\u0301", "las dr\u043egas", "ＧＵＮ ⓖⓤⓝ 𝐠𝐮𝐧",
		"ﬁre ß İstanbul ς", "\u1100\u1161\u11a8", "क\u093c\u093e", "\u0f71\u0f72\u0f74", "ǰ", "㏠ ① Ⅻ", "\u2028x\u2029",
		"\xff\xfe bad", "\u0300start", "tres\u00a0\u3000leches", "Καλημέρα", "ยาเสพติด", "مرحبا", "🏳️‍🌈 \u200d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkFoldMapped(t, s) })
}

func checkFoldMapped(t *testing.T, s string) {
	t.Helper()
	ft := foldMapped(s)
	if want := foldForWatch(s); ft.text != want {
		t.Fatalf("foldMapped(%q) = %q, foldForWatch = %q", s, ft.text, want)
	}
	if len(ft.from) != len(ft.text) || len(ft.to) != len(ft.text) {
		t.Fatalf("%q: a map of %d/%d for %d bytes", s, len(ft.from), len(ft.to), len(ft.text))
	}
	starts := map[int]bool{len(s): true} // where runes begin (an invalid byte is one)
	for i := 0; i < len(s); {
		starts[i] = true
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	for i := range ft.from {
		from, to := ft.from[i], ft.to[i]
		if from < 0 || to > len(s) || from >= to || (i > 0 && from < ft.from[i-1]) {
			t.Fatalf("%q: byte %d maps to [%d, %d)", s, i, from, to)
		}
		if !starts[from] || !starts[to] {
			t.Fatalf("%q: byte %d maps inside a rune [%d, %d)", s, i, from, to)
		}
	}
}

// Random strings of the letters that fold in unusual ways, for the test runs that
// do not fuzz.
func TestFoldMappedIsTheFoldForMixedLetters(t *testing.T) {
	pool := []rune("aAzÉé\u0301\u0308\u200b\u00ad\u200d \u00a0\n\u3000ßﬁİıς\u043e\u041e\u0585ǰｇ𝐠①㏠Ⅻ\u1100\u1161\u11a8가क\u093c\u093e\u0f71\u0f72" +
		"ยา武器\u0627\u064e\u05d0\u0591rnm10lO\u2028\u1e9e\u01c4\u0345\u1d165\u1d16d")
	rng := rand.New(rand.NewPCG(13, 11))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(10) {
			b.WriteRune(pool[rng.IntN(len(pool))])
		}
		checkFoldMapped(t, b.String())
	}
}

// The queue shows a message's start: a few lines, cut after a word, marks kept.
func TestPreviewKeepsTheStartOfTheText(t *testing.T) {
	long := strings.Repeat("palabra ", 60)
	ps, cut := cutPassages([]Passage{{Text: long}}, previewRunes, previewLines)
	if !cut || len(ps) != 1 || !strings.HasSuffix(ps[0].Text, "palabra") || len([]rune(ps[0].Text)) > previewRunes {
		t.Errorf("a long text: %v %q", cut, marked(ps))
	}
	ps, cut = cutPassages([]Passage{{Text: "uno\ndos\n"}, {Text: "tres", Watch: true}, {Text: "\ncuatro\ncinco"}}, previewRunes, previewLines)
	if got := marked(ps); !cut || got != "uno\ndos\n[tres]\ncuatro" {
		t.Errorf("five lines: %v %q", cut, got)
	}
	short := []Passage{{Text: "Hola "}, {Text: "mijo", Watch: true}}
	if ps, cut := cutPassages(short, previewRunes, previewLines); cut || marked(ps) != "Hola [mijo]" {
		t.Errorf("a short text was cut: %q", marked(ps))
	}
}
