// Package i18n owns the languages Kinlink speaks (English and Spanish) and their
// message catalogs, and picks a person's language: the one they chose, else the best
// match of their browser's Accept-Language, else English.
package i18n

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/text/language"
)

// supported languages; the first is the fallback.
var supported = []string{"en", "es"}

// Supported lists the languages Kinlink speaks; the list is a copy, so changing it changes nothing.
func Supported() []string { return slices.Clone(supported) }

// Names are the languages as their speakers write them, for the switch.
var Names = map[string]string{"en": "English", "es": "Español"}

//go:embed locales/*.json
var files embed.FS

// Catalog holds every message of every language.
type Catalog struct {
	messages map[string]map[string]string
	matcher  language.Matcher
}

// Load reads the embedded catalogs and checks that every language has every key.
func Load() (*Catalog, error) {
	c := &Catalog{messages: map[string]map[string]string{}}
	tags := make([]language.Tag, len(supported))
	for i, lang := range supported {
		tags[i] = language.MustParse(lang)
		b, err := fs.ReadFile(files, "locales/"+lang+".json")
		if err != nil {
			return nil, fmt.Errorf("i18n: %w", err)
		}
		m, err := decodeMessages(b)
		if err != nil {
			return nil, fmt.Errorf("i18n: locales/%s.json: %w", lang, err)
		}
		c.messages[lang] = m
	}
	c.matcher = language.NewMatcher(tags)
	for _, lang := range supported[1:] {
		for key := range c.messages[supported[0]] {
			if _, ok := c.messages[lang][key]; !ok {
				return nil, fmt.Errorf("i18n: %q has no %s translation", key, lang)
			}
		}
		for key := range c.messages[lang] {
			if _, ok := c.messages[supported[0]][key]; !ok {
				return nil, fmt.Errorf("i18n: %s has %q, which %s lacks", lang, key, supported[0])
			}
		}
	}
	return c, nil
}

// T returns the message key in lang, formatted with args like fmt.Sprintf. An unknown
// key comes back as itself, so that a missing message shows rather than hides.
func (c *Catalog) T(lang, key string, args ...any) string {
	m, ok := c.messages[lang][key]
	if !ok {
		if m, ok = c.messages[supported[0]][key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(m, args...)
	}
	return m
}

// Keys lists every message key, sorted.
func (c *Catalog) Keys() []string {
	keys := make([]string, 0, len(c.messages[supported[0]]))
	for k := range c.messages[supported[0]] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// IsSupported reports whether lang is one of ours.
func IsSupported(lang string) bool {
	for _, s := range supported {
		if s == lang {
			return true
		}
	}
	return false
}

// Negotiate picks the language: chosen (from the person's saved choice) when it is
// supported, else the best match for an Accept-Language header, else English.
func (c *Catalog) Negotiate(chosen, acceptLanguage string) string {
	if IsSupported(chosen) {
		return chosen
	}
	if strings.TrimSpace(acceptLanguage) == "" {
		return supported[0]
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return supported[0]
	}
	_, index, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return supported[0]
	}
	return supported[index]
}

// decodeMessages reads a locale file, refusing a key given twice: json.Unmarshal
// would keep the last, and a message added under a key already used would silently
// replace the first one's text wherever it is shown.
func decodeMessages(b []byte) (map[string]string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	m := map[string]string{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		var text string
		if err := d.Decode(&text); err != nil {
			return nil, fmt.Errorf("%q: %w", key, err)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("%q is given twice", key)
		}
		m[key] = text
	}
	return m, nil
}
