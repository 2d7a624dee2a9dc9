// Package problem is the one vocabulary in which every domain package refuses a
// request: an Error has a kind (what sort of refusal: it decides the HTTP status), a
// stable code (the API's error code, which apps rely on), the inputs it concerns, and
// the message a person is told (a key of the i18n catalogs, with the values it
// quotes). Domain packages declare their refusals as values of this package; the web
// and the API render any of them through httpx.Status and httpx.Say, so a new service
// adds errors, not another ladder of errors.Is in each handler.
//
// The package knows nothing of HTTP or of languages: it is a leaf every domain package
// may import.
package problem

import (
	"errors"
	"maps"
	"time"
)

// Kind is what sort of refusal an error is.
type Kind uint8

// The kinds. Each maps to one HTTP status (httpx.Status).
const (
	// Internal is not a refusal: something failed that the person cannot fix.
	Internal Kind = iota
	// Invalid is a request that is wrong as sent; Fields says which inputs.
	Invalid
	// Unauthenticated is a request without a valid proof of who is asking.
	Unauthenticated
	// Payment is a refusal about money: not enough in the wallet, a card declined.
	Payment
	// Forbidden is a request the asker may not make.
	Forbidden
	// NotFound is something that does not exist, or that the asker may not know of.
	NotFound
	// Conflict is a request that no longer fits the state of things: decided
	// already, a key used for something else, a list changed since it was shown.
	Conflict
	// TooLarge is an upload past its limit.
	TooLarge
	// Unsupported is an upload of a kind that is not taken.
	Unsupported
	// Locked is something locked until someone unlocks it (a resident's PIN).
	Locked
	// RateLimited is too many attempts; Wait says how long until the next.
	RateLimited
	// Upstream is a service we depend on that failed (the payment processor).
	Upstream
	// Unavailable is the server too busy right now; Wait says when to try again.
	Unavailable
)

// Error is a refusal. Declare each once, as a package-level value with Declare, and
// return it (or a copy from With, After or WithFields, which still matches it under
// errors.Is).
type Error struct {
	Kind Kind
	// Code is stable and machine-readable: the API's "code".
	Code string
	// Fields names the inputs at fault and what is wrong with each ("required",
	// "too_long", …), as the API's "fields" and the web form's field errors.
	Fields map[string]string
	// Reasons says why a password was refused, when it was.
	Reasons []string
	// Message is the i18n key of what the person is told; empty means the message
	// of the code ("api.error."+Code), or only the fields' own messages on a form.
	Message string
	// Args are the values the message quotes (a limit, a line number); a
	// time.Duration is said in words in the person's language.
	Args []any
	// Wait is how long until trying again makes sense, for RateLimited and
	// Unavailable, or for a step that opens later (the Retry-After header).
	Wait time.Duration
	// AttemptsLeft, when set, is how many more tries of a counted secret (a
	// security answer) the person has before the step it guards locks.
	AttemptsLeft *int

	text string
	root *Error // the declared value this one was made from
}

// Declare makes a refusal; text is what logs and wrapped errors say.
func Declare(kind Kind, code, text string) *Error {
	e := &Error{Kind: kind, Code: code, text: text}
	e.root = e
	return e
}

// On names the input at fault and what is wrong with it. It is for declarations: it
// changes e and returns it.
func (e *Error) On(field, reason string) *Error {
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	e.Fields[field] = reason
	return e
}

// Say sets the i18n key of the message a person is told. It is for declarations: it
// changes e and returns it.
func (e *Error) Say(key string) *Error {
	e.Message = key
	return e
}

// With returns a copy of e whose message quotes args.
func (e *Error) With(args ...any) *Error {
	c := e.copy()
	c.Args = args
	return c
}

// After returns a copy of e that says to try again after wait.
func (e *Error) After(wait time.Duration) *Error {
	c := e.copy()
	c.Wait = wait
	return c
}

// Left returns a copy of e that says how many tries are left.
func (e *Error) Left(n int) *Error {
	c := e.copy()
	c.AttemptsLeft = &n
	return c
}

// WithFields returns a copy of e about these inputs instead of the declared ones.
func (e *Error) WithFields(fields map[string]string) *Error {
	c := e.copy()
	c.Fields = fields
	return c
}

// WithReasons returns a copy of e that says why a password was refused.
func (e *Error) WithReasons(reasons []string) *Error {
	c := e.copy()
	c.Reasons = reasons
	return c
}

func (e *Error) copy() *Error {
	c := *e
	c.Fields = maps.Clone(e.Fields)
	return &c
}

func (e *Error) Error() string { return e.text }

// Is matches copies of the same declared error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.root == e.root
}

// Problem lets an error type of a domain package (one carrying details, such as a
// photo's number) say what refusal it is.
type Problem interface {
	Problem() *Error
}

// As finds the refusal in err's chain, if there is one.
func As(err error) (*Error, bool) {
	var p Problem
	if errors.As(err, &p) {
		return p.Problem(), true
	}
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}
