package web

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/identity"
)

// Form carries what the person typed and what is wrong with it, so that a page shown
// again with errors loses nothing.
type Form struct {
	Values  map[string]string
	Errors  map[string]string // field -> code
	Reasons []string          // why a password was refused
	Message string            // one message for the whole form, already translated
	// Said words fields' errors already, where the words quote the field's own
	// limits (a price cap, a range); the others are worded by their code.
	Said map[string]string
	// MinLength is the password minimum the form's messages quote; zero means the
	// families' minimum.
	MinLength int
}

func newForm(r *http.Request, fields ...string) *Form {
	f := &Form{Values: map[string]string{}, Errors: map[string]string{}}
	for _, name := range fields {
		f.Values[name] = r.PostFormValue(name)
	}
	return f
}

func (f *Form) errorText(cat *i18n.Catalog, lang, field string) string {
	code, ok := f.Errors[field]
	if !ok {
		return ""
	}
	if said, ok := f.Said[field]; ok {
		return said
	}
	if code == "weak_password" {
		text := ""
		for i, reason := range f.Reasons {
			if i > 0 {
				text += " "
			}
			if reason == identity.ReasonTooShort {
				min := identity.MinPasswordFamily
				if f.MinLength > 0 {
					min = f.MinLength
				}
				text += cat.T(lang, "password.reason."+reason, min)
			} else {
				text += cat.T(lang, "password.reason."+reason)
			}
		}
		return text
	}
	return cat.T(lang, "form.error."+code)
}

// HasErrors reports whether anything on the form needs fixing.
func (f *Form) HasErrors() bool { return len(f.Errors) > 0 || f.Message != "" }
