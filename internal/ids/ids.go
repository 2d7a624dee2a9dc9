// Package ids makes and checks Kinlink's opaque identifiers: 128 random bits as 32
// lower-case hex digits. Nothing a user or URL sees is a row number.
package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a fresh identifier.
func New() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Valid reports whether s has the shape of an identifier: anything else names
// nothing, and need not reach the database.
func Valid(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
