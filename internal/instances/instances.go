// Package instances is the registry of the Kinlink servers that share one database
// (the `instances` table): each serving instance keeps its row fresh, so that
// another can tell whether an instance is still there and reach it. A video visit's
// room lives on one instance (visits.room_instance); a participant's signalling
// that arrives elsewhere is passed on to it (Forward), marked with a hop header
// signed with the forwarding instance's key, so that a request is forwarded once
// at most.
package instances

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/database"
)

const (
	// Every is how often a serving instance says it is there.
	Every = 10 * time.Second
	// Stale is how long an instance may go unseen before it counts as gone: its
	// rooms are then taken over by the next join on another instance.
	Stale = 30 * time.Second
)

// Registry is this instance's row in the registry, and the way to read the others'.
type Registry struct {
	db      *database.DB
	name    string
	url     string
	key     []byte // signs the requests this instance forwards; new at every start
	started time.Time
	now     func() time.Time
	log     *slog.Logger
}

// New makes the registry of the instance called name, reached by the others at url
// (its internal address, http://host:port). Nothing is written until Join.
func New(db *database.DB, name, url string, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.Default()
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &Registry{db: db, name: name, url: strings.TrimSuffix(url, "/"), key: key, now: time.Now, log: log}
}

// SetClock makes the registry read the time from now (tests).
func (r *Registry) SetClock(now func() time.Time) { r.now = now }

// Name is this instance's name.
func (r *Registry) Name() string { return r.name }

// URL is where the other instances reach this one.
func (r *Registry) URL() string { return r.url }

// Join writes this instance's row: its address, its new key, seen now. An
// instance of the same name that ran before (this one before a restart) is
// replaced.
func (r *Registry) Join(ctx context.Context) error {
	now := r.now().UTC()
	r.started = now
	_, err := r.db.Write().ExecContext(ctx, `INSERT INTO instances (name, url, hop_key, started_at, seen_at) VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (name) DO UPDATE SET url = excluded.url, hop_key = excluded.hop_key, started_at = excluded.started_at, seen_at = excluded.seen_at`,
		r.name, r.url, hex.EncodeToString(r.key), now)
	if err != nil {
		return fmt.Errorf("instances: join as %s: %w", r.name, err)
	}
	return nil
}

// Beat says this instance is still there. A row that another server has taken
// meanwhile (two servers given one KINLINK_INSTANCE) is logged and taken back:
// names must be unique, and rooms pinned to a shared name reach either.
func (r *Registry) Beat(ctx context.Context) error {
	res, err := r.db.Write().ExecContext(ctx, "UPDATE instances SET seen_at = $3, url = $4 WHERE name = $1 AND hop_key = $2",
		r.name, hex.EncodeToString(r.key), r.now().UTC(), r.url)
	if err != nil {
		return fmt.Errorf("instances: beat: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		r.log.Error("instances: another server started with this instance's name (KINLINK_INSTANCE): each must have its own", "instance", r.name)
		return r.Join(ctx)
	}
	return nil
}

// Run beats every ten seconds until ctx ends, then removes this instance's row,
// so that its rooms (dropped as the server stops) are taken over at once rather
// than 30 seconds later.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTicker(Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Leave(context.WithoutCancel(ctx))
			return
		case <-t.C:
			if err := r.Beat(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("instances: heartbeat", "err", err)
			}
		}
	}
}

// Leave removes this instance's row (not another's of the same name).
func (r *Registry) Leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.db.Write().ExecContext(ctx, "DELETE FROM instances WHERE name = $1 AND hop_key = $2", r.name, hex.EncodeToString(r.key)); err != nil {
		r.log.Warn("instances: leave", "err", err)
	}
}

// Instance is a row of the registry.
type Instance struct {
	Name   string
	URL    string
	SeenAt time.Time
	key    []byte
}

// ErrUnknown is an instance that has no row: never started, or stopped.
var ErrUnknown = errors.New("instances: no such instance")

// Get reads an instance's row.
func (r *Registry) Get(ctx context.Context, name string) (Instance, error) {
	in := Instance{Name: name}
	var key string
	var seen database.AnyTime
	err := r.db.Read().QueryRowContext(ctx, "SELECT url, hop_key, seen_at FROM instances WHERE name = $1", name).Scan(&in.URL, &key, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return in, ErrUnknown
	}
	if err != nil {
		return in, fmt.Errorf("instances: read %s: %w", name, err)
	}
	in.SeenAt = seen.Time
	in.key, _ = hex.DecodeString(key)
	return in, nil
}

// Alive reports whether an instance was seen within Stale.
func (r *Registry) Alive(in Instance) bool {
	return !in.SeenAt.IsZero() && r.now().Sub(in.SeenAt) < Stale
}

// Where is the internal URL of the named instance and whether it is there (seen
// within Stale): what visits need to send a join to a room's instance.
func (r *Registry) Where(ctx context.Context, name string) (url string, alive bool, err error) {
	in, err := r.Get(ctx, name)
	if errors.Is(err, ErrUnknown) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return in.URL, r.Alive(in), nil
}

// HopHeader marks a request one instance passed on to another: "NAME;t=UNIX;sig=HEX",
// the signature an HMAC-SHA256, with the forwarding instance's key, of its name, the
// time, the method, the host and the path with query. A client cannot make one
// (the key never leaves the servers and their database), and a copy a client
// sends is worth nothing: a request whose header does not verify is treated as
// not forwarded.
const HopHeader = "Kinlink-Forwarded-By"

// sign is the hop header of a request this instance forwards.
func (r *Registry) sign(method, host, uri string) string {
	t := strconv.FormatInt(r.now().Unix(), 10)
	return r.name + ";t=" + t + ";sig=" + hex.EncodeToString(mac(r.key, r.name, t, method, host, uri))
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// ForwardedBy names the instance that forwarded a request, when its hop header
// verifies: signed by an instance that is there, within Stale of now. "" is a
// request from a client (or a header that does not verify).
func (r *Registry) ForwardedBy(ctx context.Context, header, method, host, uri string) string {
	if header == "" {
		return ""
	}
	name, rest, _ := strings.Cut(header, ";t=")
	t, sig, _ := strings.Cut(rest, ";sig=")
	unix, err := strconv.ParseInt(t, 10, 64)
	if err != nil || name == "" {
		return ""
	}
	if d := r.now().Sub(time.Unix(unix, 0)); d > Stale || d < -Stale {
		return ""
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return ""
	}
	in, err := r.Get(ctx, name)
	if err != nil || !r.Alive(in) || len(in.key) == 0 {
		return ""
	}
	if !hmac.Equal(got, mac(in.key, name, t, method, host, uri)) {
		return ""
	}
	return name
}
