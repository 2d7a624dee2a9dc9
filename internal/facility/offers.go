package facility

// An Offering is a service families and residents use through Kinlink. Its name keys
// the words that describe it ("home.services.<name>.title"), which the catalogs hold
// for every offering, offered or not.
type Offering string

// The offerings Kinlink has words for. A server offers only those in Offered.
const (
	Messages   Offering = "messages" // eMessages with photos, paid with stamps
	VideoGrams Offering = "videograms"
	Visits     Offering = "visits"
	Deposits   Offering = "deposits"
)

// Offer is a service a server has, and how an agency turns it on.
type Offer struct {
	Offering Offering
	// On reports whether an agency has the service on; nil means every agency does.
	On func(Agency) bool
}

// Offers are the services a server has, in the order pages list them.
type Offers []Offer

// Offered is what this program does: the one list the public site, help, privacy and
// the portal read, so that no page describes what does not exist. A service's work
// adds its entry here when it is built, with the agency policy that turns it on:
//
//	{Offering: VideoGrams, On: func(a Agency) bool { return a.VideoGramsOn }},
func Offered() Offers {
	return Offers{{Offering: Messages}, {Offering: Deposits}}
}

// Has reports whether s is among the offers.
func (o Offers) Has(s Offering) bool {
	for _, of := range o {
		if of.Offering == s {
			return true
		}
	}
	return false
}

// At is the offers an agency has on: offered by the server and on at the agency.
func (o Offers) At(a Agency) Offers {
	var on Offers
	for _, of := range o {
		if of.On == nil || of.On(a) {
			on = append(on, of)
		}
	}
	return on
}

// Offerings names the offers, in their order.
func (o Offers) Offerings() []Offering {
	out := make([]Offering, len(o))
	for i, of := range o {
		out[i] = of.Offering
	}
	return out
}
