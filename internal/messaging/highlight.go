package messaging

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Showing a reviewer where the watch list matched. Matching runs on a fold of the
// text (invisible characters dropped, NFKC, accents, case, spacing, look-alike
// letters), whose positions are not the text's: "las DRО\u0301GAS" (a Cyrillic О
// with an accent) folds to "las drogas". To mark the words in the text as written,
// the fold is redone keeping, for every folded byte, the original runes it came from.

// foldedText is a text folded as foldForWatch folds it, and where each folded byte
// came from.
type foldedText struct {
	text string
	// from[i] and to[i] are the bytes of the original text that folded byte i came
	// from: the whole of the smallest piece that folds on its own (a letter with its
	// accents, a ligature, a run of spaces), so always at rune boundaries.
	from, to []int
}

// foldMapped folds s exactly as foldForWatch does (FuzzFoldMapped checks that the
// texts are equal) and keeps the map back to s. foldForWatch stays the one every
// send runs: this one costs a normalization per piece, which only a reviewer's page
// pays.
func foldMapped(s string) foldedText {
	// Invisible format characters go first, as foldWords drops them before NFKC (a
	// zero-width space between a letter and its accent does not keep them apart).
	var kept strings.Builder
	var keptFrom, keptTo []int // per byte of kept: the original rune's bytes
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.Is(unicode.Cf, r) {
			before := kept.Len()
			kept.WriteRune(r) // invalid bytes become U+FFFD, as strings.Map makes them
			for range kept.Len() - before {
				keptFrom, keptTo = append(keptFrom, i), append(keptTo, i+n)
			}
		}
		i += n
	}

	// Each piece between normalization boundaries folds on its own: NFKC, then as
	// facility.FoldName does (NFKD, marks dropped, case folded), then letters
	// outside ASCII as their look-alikes. Spaces are collapsed last, over the
	// whole text, as strings.Fields collapses them.
	out := foldedText{}
	var b strings.Builder
	fold := cases.Fold()
	seen := map[rune]string{}
	pending, spaceFrom, spaceTo := false, 0, 0 // a run of spaces not yet written
	emit := func(piece string, from, to int) {
		for _, r := range piece {
			if unicode.IsSpace(r) {
				if b.Len() == 0 {
					continue // leading spaces are dropped
				}
				if !pending {
					pending, spaceFrom = true, from
				}
				spaceTo = to
				continue
			}
			if pending {
				b.WriteByte(' ')
				out.from, out.to = append(out.from, spaceFrom), append(out.to, spaceTo)
				pending = false
			}
			before := b.Len()
			b.WriteRune(r)
			for range b.Len() - before {
				out.from, out.to = append(out.from, from), append(out.to, to)
			}
		}
	}
	k := kept.String()
	for a := 0; a < len(k); {
		end := a + norm.NFKC.NextBoundaryInString(k[a:], true)
		if end <= a {
			end = len(k)
		}
		from, to := keptFrom[a], keptTo[end-1]
		var letters strings.Builder
		for _, r := range norm.NFKD.String(norm.NFKC.String(k[a:end])) {
			if !unicode.Is(unicode.Mn, r) {
				letters.WriteRune(r)
			}
		}
		for _, r := range fold.String(letters.String()) {
			switch {
			case unicode.IsSpace(r):
				emit(" ", from, to)
			case r < utf8.RuneSelf:
				emit(string(r), from, to)
			default:
				l, ok := seen[r]
				if !ok {
					l = lookAlike(r)
					seen[r] = l
				}
				emit(l, from, to)
			}
		}
		a = end
	}
	out.text = b.String()
	return out
}

// Passage is a stretch of a message's text as written; Watch marks where a phrase
// of the watch list was found.
type Passage struct {
	Text  string
	Watch bool
}

// watchPassages cuts text into passages, marking every place where one of phrases
// occurs as the watch list matches it (folded, whole words), and returns the
// phrases found, as the list writes them, in the order they first appear.
func watchPassages(text string, phrases []watchPhrase) ([]Passage, []string) {
	if text == "" {
		return nil, nil
	}
	ft := foldMapped(text)
	type span struct{ from, to int }
	var spans []span
	var found []string
	first := map[string]int{} // a phrase found: where it first occurs in the fold
	for _, p := range phrases {
		if p.folded == "" {
			continue
		}
		for i := indexWord(ft.text, p.folded, 0); i >= 0; i = indexWord(ft.text, p.folded, i+len(p.folded)) {
			spans = append(spans, span{ft.from[i], ft.to[i+len(p.folded)-1]})
			if _, ok := first[p.phrase]; !ok {
				first[p.phrase] = i
				found = append(found, p.phrase)
			}
		}
	}
	slices.SortStableFunc(found, func(a, b string) int { return first[a] - first[b] })
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	var out []Passage
	at := 0 // the text before at is in out
	for i := 0; i < len(spans); {
		from, to := spans[i].from, spans[i].to
		for i++; i < len(spans) && spans[i].from <= to; i++ { // overlapping phrases mark one stretch
			to = max(to, spans[i].to)
		}
		if from > at {
			out = append(out, Passage{Text: text[at:from]})
		}
		out = append(out, Passage{Text: text[from:to], Watch: true})
		at = to
	}
	if at < len(text) {
		out = append(out, Passage{Text: text[at:]})
	}
	return out, found
}

// Preview bounds: the queue shows the start of a message, a few lines.
const (
	previewRunes = 240
	previewLines = 4
)

// cutPassages keeps the start of passages: at most runes runes and lines lines,
// ending after a word when one ends near the cut. It reports whether it cut.
func cutPassages(ps []Passage, runes, lines int) ([]Passage, bool) {
	n, nl := 0, 0
	for i, p := range ps {
		for j, r := range p.Text {
			if r == '\n' {
				nl++
			}
			if n == runes || nl == lines {
				out := slices.Clone(ps[:i+1])
				out[i].Text = p.Text[:j]
				return trimCut(out, !unicode.IsSpace(r)), true
			}
			n++
		}
	}
	return ps, false
}

// trimCut ends cut passages after the last whole word when the cut fell inside a
// word (midWord) and a word ends in the last fifth of what is kept, and drops the
// spaces before the cut.
func trimCut(ps []Passage, midWord bool) []Passage {
	last := &ps[len(ps)-1]
	if midWord && !last.Watch {
		if i := strings.LastIndexFunc(last.Text, unicode.IsSpace); i >= 0 && len(last.Text)-i < previewRunes/5 {
			last.Text = last.Text[:i]
		}
	}
	last.Text = strings.TrimRightFunc(last.Text, unicode.IsSpace)
	if last.Text == "" {
		ps = ps[:len(ps)-1]
	}
	return ps
}
