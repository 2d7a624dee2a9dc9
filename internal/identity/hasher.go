package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kinlink/kinlink/internal/problem"
	"golang.org/x/crypto/argon2"
)

// HashParams are argon2id's costs. The defaults are OWASP's minimum for argon2id
// (m=19 MiB, t=2, p=1); raising them makes logins rehash stored passwords.
type HashParams struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultHashParams meet SECURITY.md property 3.
var DefaultHashParams = HashParams{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// ErrBusy means every hashing slot is taken and the queue is full: the caller answers
// 503 with Retry-After at once instead of piling up memory.
var ErrBusy = problem.Declare(problem.Unavailable, "server_busy", "identity: too many password checks at once").After(time.Second)

// Hasher hashes and verifies secrets with argon2id. Each hash holds MemoryKiB of
// memory for tens of milliseconds, so at most `slots` run at once (about one per
// core) and at most `queue` more wait, briefly; the rest are refused. Memory stays
// bounded however many requests arrive.
type Hasher struct {
	params  HashParams
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
	maxWait time.Duration
}

// NewHasher returns a hasher running at most slots hashes at once with up to queue
// more waiting at most maxWait.
func NewHasher(p HashParams, slots, queue int, maxWait time.Duration) *Hasher {
	return &Hasher{params: p, slots: make(chan struct{}, slots), queue: int64(queue), maxWait: maxWait}
}

// Params are the costs new hashes use.
func (h *Hasher) Params() HashParams { return h.params }

// acquire takes a hashing slot or fails fast with ErrBusy.
func (h *Hasher) acquire(ctx context.Context) (func(), error) {
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	default:
	}
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		return nil, ErrBusy
	}
	defer h.waiting.Add(-1)
	timer := time.NewTimer(h.maxWait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Hash returns a PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash.
func (h *Hasher) Hash(ctx context.Context, secret string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	salt := make([]byte, 16)
	rand.Read(salt)
	p := h.params
	sum := argon2.IDKey([]byte(secret), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	collect()
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// Verify reports whether secret matches the PHC hash, and whether the hash was made
// with weaker parameters than today's and should be replaced.
func (h *Hasher) Verify(ctx context.Context, secret, phc string) (ok, rehash bool, err error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, false, err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, false, err
	}
	defer release()
	got := argon2.IDKey([]byte(secret), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	collect()
	ok = subtle.ConstantTimeCompare(got, want) == 1
	rehash = p.MemoryKiB < h.params.MemoryKiB || p.Time < h.params.Time || p.Threads < h.params.Threads
	return ok, rehash, nil
}

// collect frees the memory argon2.IDKey allocated and dropped (MemoryKiB per call)
// before the caller's slot is released, so the heap never holds more hashing memory
// than one block set per slot: left to the collector's goal (twice the live heap, in
// which the running hashes count), two to four dead sets piled up between collections.
// The heap's other live data is a few MB of mostly pointer-free slices, so a
// collection costs little next to a hash.
func collect() { runtime.GC() }

func parsePHC(phc string) (HashParams, []byte, []byte, error) {
	var p HashParams
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("identity: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errors.New("identity: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("identity: bad argon2 parameters: %w", err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, err
	}
	sum, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return p, nil, nil, err
	}
	return p, salt, sum, nil
}
