package httpx

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/problem"
)

// statusOf is the one table from a kind of refusal to its HTTP status, for the web
// and the API alike.
var statusOf = [...]int{
	problem.Internal:        http.StatusInternalServerError,
	problem.Invalid:         http.StatusBadRequest,
	problem.Unauthenticated: http.StatusUnauthorized,
	problem.Payment:         http.StatusPaymentRequired,
	problem.Forbidden:       http.StatusForbidden,
	problem.NotFound:        http.StatusNotFound,
	problem.Conflict:        http.StatusConflict,
	problem.TooLarge:        http.StatusRequestEntityTooLarge,
	problem.Unsupported:     http.StatusUnsupportedMediaType,
	problem.Locked:          http.StatusLocked,
	problem.RateLimited:     http.StatusTooManyRequests,
	problem.Upstream:        http.StatusBadGateway,
	problem.Unavailable:     http.StatusServiceUnavailable,
}

// Status is the HTTP status that answers a refusal.
func Status(p *problem.Error) int {
	if int(p.Kind) < len(statusOf) {
		return statusOf[p.Kind]
	}
	return http.StatusInternalServerError
}

// Refusing writes the headers every answer to a refusal carries, whatever its body:
// when to try again.
func Refusing(w http.ResponseWriter, p *problem.Error) {
	if p.Wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(p.Wait.Seconds()))))
	}
}

// Say is what a person is told of a refusal, in their language: the error's own
// message, or its code's, and then the tries left where they are counted. A wait is
// said in whole minutes, the way a person plans; a duration the message quotes, in
// words ("23 hours and 40 minutes").
func Say(cat *i18n.Catalog, lang string, p *problem.Error) string {
	msg := say(cat, lang, p)
	if p.AttemptsLeft != nil {
		switch n := *p.AttemptsLeft; n {
		case 0:
			msg += " " + cat.T(lang, "form.attempts_left.none")
		case 1:
			msg += " " + cat.T(lang, "form.attempts_left.one")
		default:
			msg += " " + cat.T(lang, "form.attempts_left.many", n)
		}
	}
	return msg
}

func say(cat *i18n.Catalog, lang string, p *problem.Error) string {
	if p.Message != "" {
		args := make([]any, len(p.Args))
		for i, a := range p.Args {
			if d, ok := a.(time.Duration); ok {
				a = cat.Duration(lang, d)
			}
			args[i] = a
		}
		return cat.T(lang, p.Message, args...)
	}
	if p.Kind == problem.RateLimited && p.Wait > 0 {
		minutes := int(math.Ceil(p.Wait.Minutes()))
		switch {
		case p.Wait > 24*time.Hour:
			return cat.T(lang, "form.too_many_reset")
		case minutes == 1:
			return cat.T(lang, "form.too_many_one")
		}
		return cat.T(lang, "form.too_many", minutes)
	}
	return cat.T(lang, "api.error."+p.Code)
}
