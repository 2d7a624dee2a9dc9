// Package ids makes and checks Kinlink's opaque identifiers: 128 random bits as 32
// lower-case hex digits. Nothing a user or URL sees is a row number.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// New returns a fresh identifier.
func New() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Ordered returns a fresh identifier that sorts by creation time: 48 bits of unix
// milliseconds, then 80 random bits (the layout of a UUIDv7, without its version
// bits). Rows of the tables written on every message then go to the end of their
// primary key index instead of onto a random page of it; 80 random bits still
// cannot be guessed, and every use is checked against the caller's rights anyway.
func Ordered() string {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
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

// ValidKey reports whether an idempotency key is one an app or a page of ours
// makes: at most 150 visible ASCII characters (a UUID, a token), or none.
func ValidKey(key string) bool {
	if len(key) > 150 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return false
		}
	}
	return true
}
