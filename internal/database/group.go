package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Group commit on SQLite. Each commit writes every page the transaction changed to
// the WAL; a message changes about fifteen (the message's indexes, the ledger's
// rows), so committing was the largest cost of sending one. Transactions that queue
// for the one writer at the same moment are run together in one SQLite transaction,
// each inside a savepoint of its own, and committed once: they pay for the shared
// pages once. Every caller still gets its own result, and only after the commit that
// makes its change durable.
//
// A function run here may run twice: when SQLite gives up the whole transaction (a
// statement interrupted by its caller's cancelled context does that), the others of
// the group are run again, each alone. Only functions whose effects outside the
// database are none (or are set afresh on each run) belong here.

// maxGroup bounds how many transactions share one commit.
const maxGroup = 64

type groupTx struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

type grouper struct {
	once sync.Once
	in   chan *groupTx
	quit chan struct{}
	wg   sync.WaitGroup
}

// InGroupTx is InTx for hot paths: on SQLite the transaction may share its commit
// with others waiting at the same time (see above); on PostgreSQL, whose writers do
// not queue on one connection, it is InTx.
func (db *DB) InGroupTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.Dialect != SQLite {
		return db.InTx(ctx, fn)
	}
	g := &db.group
	g.once.Do(func() {
		g.in = make(chan *groupTx, 1024)
		g.quit = make(chan struct{})
		g.wg.Go(db.commitGroups)
	})
	t := &groupTx{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case g.in <- t:
	case <-g.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// No wait on ctx here: once queued, the answer says whether the change is stored.
	return <-t.done
}

var errClosed = errors.New("database: closed")

// commitGroups runs queued transactions, as many as are waiting, until the
// database closes.
func (db *DB) commitGroups() {
	g := &db.group
	for {
		var batch []*groupTx
		select {
		case t := <-g.in:
			batch = append(batch, t)
		case <-g.quit:
			for {
				select {
				case t := <-g.in:
					t.done <- errClosed
				default:
					return
				}
			}
		}
	more:
		for len(batch) < maxGroup {
			select {
			case t := <-g.in:
				batch = append(batch, t)
			default:
				break more
			}
		}
		db.commitGroup(batch)
	}
}

// commitGroup runs a batch in one transaction, each function in a savepoint, and
// answers every caller after the commit.
func (db *DB) commitGroup(batch []*groupTx) {
	if len(batch) == 1 {
		t := batch[0]
		t.done <- db.InTx(t.ctx, t.fn)
		return
	}
	bg := context.Background()
	tx, err := db.write.BeginTx(bg, nil)
	if err != nil {
		for _, t := range batch {
			t.done <- fmt.Errorf("database: begin: %w", err)
		}
		return
	}
	answers := make([]error, len(batch))
	broken := -1 // the first function after which the transaction is gone
	for i, t := range batch {
		if err := t.ctx.Err(); err != nil {
			answers[i] = err
			continue
		}
		if _, err := tx.ExecContext(bg, "SAVEPOINT kinlink_group"); err != nil {
			broken = i
			break
		}
		answers[i] = t.fn(tx)
		end := "RELEASE kinlink_group"
		if answers[i] != nil {
			end = "ROLLBACK TO kinlink_group; RELEASE kinlink_group"
		}
		if _, err := tx.ExecContext(bg, end); err != nil {
			if answers[i] == nil {
				broken = i // its change is lost with the rest: run it again
			} else {
				broken = i + 1 // it failed anyway, and says so
			}
			break
		}
	}
	if broken >= 0 {
		// SQLite gave up the transaction. Whatever succeeded in it is undone; those
		// and the ones not reached yet run again, each alone.
		tx.Rollback()
		for i, t := range batch {
			if i < broken && answers[i] != nil {
				t.done <- answers[i]
				continue
			}
			t.done <- db.InTx(t.ctx, t.fn)
		}
		return
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("database: commit: %w", err)
		for i := range answers {
			if answers[i] == nil {
				answers[i] = err
			}
		}
	}
	for i, t := range batch {
		t.done <- answers[i]
	}
}

// stopGroups ends group commits: queued callers are told the database closed.
func (db *DB) stopGroups() {
	g := &db.group
	g.once.Do(func() { g.quit = make(chan struct{}) }) // never started: nothing to stop
	select {
	case <-g.quit:
	default:
		close(g.quit)
	}
	g.wg.Wait()
}
