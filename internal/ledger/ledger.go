// Package ledger owns money: double-entry accounts (each family's wallet, each
// resident's trust account, the payment processor, the platform), transactions that
// always balance, idempotency keys so that a retried request never moves money twice,
// and balances that never go below zero, also under concurrent requests. It also owns
// wallet top-ups through a payment processor, and refunds of a wallet to its cards.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/ids"
)

// Currency of every amount, in cents.
const Currency = "USD"

// Kinds of accounts.
const (
	Wallet   = "wallet"    // a family's prepaid money; never below zero
	Resident = "resident"  // a resident's trust account; never below zero
	Cards    = "processor" // money received through the payment processor; goes negative as money comes in
	Platform = "platform"  // what families paid for services
	Hold     = "hold"      // money set aside for one thing not yet done (a booked visit); never below zero
	Owed     = "owed"      // minus what a resident owes after a chargeback of money already spent; at or below zero
)

// floored reports whether an account keeps a stored balance that may not go below
// zero: the families' wallets, residents' trust accounts and holds. The system accounts
// (processor, platform) take a posting from every purchase in the system; a stored
// balance would make each of them one row that every send locks in turn (on
// PostgreSQL, sends of different families would queue on it), so their balance is
// the sum of their entries instead.
func floored(kind string) bool { return kind == Wallet || kind == Resident || kind == Hold }

// Errors with stable meanings.
var (
	ErrInsufficientFunds = errors.New("ledger: insufficient funds")
	ErrUnbalanced        = errors.New("ledger: entries do not sum to zero")
)

// Ref names an account by kind and owner (an account id, a resident id, or "" for the
// system accounts).
type Ref struct {
	Kind  string
	Owner string
}

// WalletOf is a family's wallet.
func WalletOf(accountID string) Ref { return Ref{Wallet, accountID} }

// HoldFor is the money set aside for one thing, named by what it is for (a
// visit: "visit:<id>"). It leaves only to where it came from or to the platform.
func HoldFor(what string) Ref { return Ref{Hold, what} }

// Losses is what the platform bore: chargebacks of money a resident had already
// spent, or of a deposit already refunded. It goes below zero, as an expense does.
var Losses = Ref{Platform, "losses"}

// ResidentOf is a resident's trust account.
func ResidentOf(residentID string) Ref { return Ref{Resident, residentID} }

// OwedBy is what a resident owes (as a negative balance) where a chargeback took
// back money they had spent and their agency has them repay it from later deposits.
func OwedBy(residentID string) Ref { return Ref{Owed, residentID} }

// Entry moves amount cents into an account (negative: out of it).
type Entry struct {
	Account Ref
	Amount  int64
}

// Transaction is one balanced movement.
type Transaction struct {
	Kind           string // topup, message, refund...
	IdempotencyKey string // unique per movement: a retry with the same key moves nothing
	Description    string
	Reference      string // what caused it: a message id, a top-up id
	Entries        []Entry
	// Card is what the transaction mirrors at the payment processor: set when,
	// and only when, an entry moves money on the processor's account (Cards), so
	// that each such movement can be matched with the processor's own record
	// (Reconcile).
	Card CardRef
}

// Kinds of card movements: what the payment processor did with card money.
const (
	CardCharge             = "charge"              // a card paid
	CardRefund             = "refund"              // money went back to a card
	CardChargeback         = "chargeback"          // the card's company took money back (a dispute)
	CardChargebackReversed = "chargeback_reversed" // a dispute the card holder lost: the money came back
)

// CardRef names a movement of card money at the processor.
type CardRef struct {
	Kind string // CardCharge, CardRefund, CardChargeback or CardChargebackReversed
	// ID is the processor's own object: the charge, the refund. "" where the
	// ledger never learns it (a chargeback: the processor's events name the
	// payment, not the dispute).
	ID string
	// ChargeID is the payment (charge) the movement belongs to.
	ChargeID string
}

// ErrUnattributed is a transaction that moves money on the processor's account
// without saying what it mirrors at the processor (or says so without moving any):
// the reconciliation could not match it.
var ErrUnattributed = errors.New("ledger: a movement of the processor's account needs its card movement (kind and charge), and only such a movement has one")

func (c CardRef) valid() bool {
	switch c.Kind {
	case CardCharge, CardRefund, CardChargeback, CardChargebackReversed:
		return c.ChargeID != "" && len(c.ChargeID) <= 255 && len(c.ID) <= 255
	}
	return false
}

// Ledger posts and reads transactions.
type Ledger struct {
	db *database.DB
}

// New returns the ledger of db.
func New(db *database.DB) *Ledger { return &Ledger{db: db} }

// Post records t inside tx, the transaction of the action that causes it. A key used
// before posts nothing and reports replay with the earlier transaction's id. An
// entry that would take a wallet or a trust account below zero fails the whole
// transaction with ErrInsufficientFunds; the check and the change are one statement,
// so parallel requests cannot overdraw.
func (l *Ledger) Post(ctx context.Context, tx *sql.Tx, t Transaction) (id string, replay bool, err error) {
	var sum int64
	for _, e := range t.Entries {
		sum += e.Amount
	}
	if sum != 0 || len(t.Entries) < 2 {
		return "", false, ErrUnbalanced
	}
	if t.IdempotencyKey == "" {
		return "", false, errors.New("ledger: a transaction needs an idempotency key")
	}
	card := false
	for _, e := range t.Entries {
		card = card || e.Account.Kind == Cards
	}
	if card != (t.Card != CardRef{}) || (card && !t.Card.valid()) {
		return "", false, fmt.Errorf("%w: %s %q", ErrUnattributed, t.Kind, t.IdempotencyKey)
	}
	id = ids.Ordered()
	now := time.Now().UTC()
	res, err := l.db.TxExec(ctx, tx, `INSERT INTO ledger_transactions (id, kind, idempotency_key, description, reference, created_at, card_kind, card_object, card_charge)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (idempotency_key) DO NOTHING`,
		id, t.Kind, t.IdempotencyKey, t.Description, t.Reference, now, t.Card.Kind, t.Card.ID, t.Card.ChargeID)
	if err != nil {
		return "", false, fmt.Errorf("ledger: post: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		err := l.db.TxQueryRow(ctx, tx, "SELECT id FROM ledger_transactions WHERE idempotency_key = $1", t.IdempotencyKey).Scan(&id)
		return id, true, err
	}
	for i, e := range t.Entries {
		if err := l.enter(ctx, tx, id, i, e, now); err != nil {
			return "", false, err
		}
	}
	return id, false, nil
}

// errNoAccount: an entry found no account to go to (or, for a floored account, none
// that could take it).
var errNoAccount = errors.New("ledger: no such account")

// enter records one entry of a transaction, opening the account on its first use.
func (l *Ledger) enter(ctx context.Context, tx *sql.Tx, transactionID string, position int, e Entry, now time.Time) error {
	err := l.tryEnter(ctx, tx, transactionID, position, e, now)
	if !errors.Is(err, errNoAccount) {
		return err
	}
	if err := l.open(ctx, tx, e.Account); err != nil {
		return err
	}
	// The account is there now: opened here, or by a concurrent first post that
	// committed meanwhile, or it was there and cannot take the entry.
	err = l.tryEnter(ctx, tx, transactionID, position, e, now)
	if errors.Is(err, errNoAccount) {
		return ErrInsufficientFunds
	}
	return err
}

// tryEnter changes a floored account's balance, if it stays at or above zero, and
// writes the entry. Both statements find the account by its owner, so a post reads
// nothing before it writes; each is one statement with no rows to hand back, which
// keeps a send's transaction short.
func (l *Ledger) tryEnter(ctx context.Context, tx *sql.Tx, transactionID string, position int, e Entry, now time.Time) error {
	if floored(e.Account.Kind) {
		res, err := l.db.TxExec(ctx, tx, `UPDATE ledger_accounts SET balance = balance + $4
			WHERE kind = $1 AND owner_id = $2 AND currency = $3 AND (allow_negative OR balance + $4 >= 0)`,
			e.Account.Kind, e.Account.Owner, Currency, e.Amount)
		if err != nil {
			return fmt.Errorf("ledger: post: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNoAccount
		}
	}
	res, err := l.db.TxExec(ctx, tx, `INSERT INTO ledger_entries (transaction_id, position, account_id, amount, created_at)
		SELECT $1, $2, id, $3, $4 FROM ledger_accounts WHERE kind = $5 AND owner_id = $6 AND currency = $7`,
		transactionID, position, e.Amount, now, e.Account.Kind, e.Account.Owner, Currency)
	if err != nil {
		return fmt.Errorf("ledger: post: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoAccount
	}
	return nil
}

// open creates an account at zero unless it exists.
func (l *Ledger) open(ctx context.Context, tx *sql.Tx, ref Ref) error {
	if _, err := l.db.TxExec(ctx, tx, `INSERT INTO ledger_accounts (id, kind, owner_id, currency, allow_negative, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, owner_id, currency) DO NOTHING`,
		ids.New(), ref.Kind, ref.Owner, Currency, ref.Kind == Cards || ref.Kind == Owed || ref == Losses, time.Now().UTC()); err != nil {
		return fmt.Errorf("ledger: account: %w", err)
	}
	return nil
}

// Balance returns an account's balance in cents (0 for an account never used).
func (l *Ledger) Balance(ctx context.Context, ref Ref) (int64, error) {
	return balance(l.db.Read().QueryRowContext(ctx, balanceQuery(ref), ref.Kind, ref.Owner, Currency))
}

// BalanceTx is Balance read inside tx: what the transaction's own postings left.
func (l *Ledger) BalanceTx(ctx context.Context, tx *sql.Tx, ref Ref) (int64, error) {
	return balance(l.db.TxQueryRow(ctx, tx, balanceQuery(ref), ref.Kind, ref.Owner, Currency))
}

// Balances returns the balances of the accounts of one kind owned by owners, read
// together (a list of many residents' trust accounts); an owner whose account was
// never used has none in the map.
func (l *Ledger) Balances(ctx context.Context, kind string, owners []string) (map[string]int64, error) {
	out := make(map[string]int64, len(owners))
	for len(owners) > 0 {
		n := min(len(owners), 500)
		chunk := owners[:n]
		owners = owners[n:]
		args := []any{kind, Currency}
		for _, o := range chunk {
			args = append(args, o)
		}
		query := `SELECT a.owner_id, a.balance FROM ledger_accounts a WHERE a.kind = $1 AND a.currency = $2 AND a.owner_id IN (` + database.Placeholders(3, n) + `)`
		if !floored(kind) {
			query = `SELECT a.owner_id, COALESCE(SUM(e.amount), 0) FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id
				WHERE a.kind = $1 AND a.currency = $2 AND a.owner_id IN (` + database.Placeholders(3, n) + `) GROUP BY a.owner_id`
		}
		rows, err := l.db.Read().QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("ledger: balances: %w", err)
		}
		for rows.Next() {
			var owner string
			var b int64
			if err := rows.Scan(&owner, &b); err != nil {
				rows.Close()
				return nil, fmt.Errorf("ledger: balances: %w", err)
			}
			out[owner] = b
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("ledger: balances: %w", err)
		}
	}
	return out, nil
}

func balanceQuery(ref Ref) string {
	if !floored(ref.Kind) {
		return `SELECT COALESCE(SUM(e.amount), 0) FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id
			WHERE a.kind = $1 AND a.owner_id = $2 AND a.currency = $3`
	}
	return "SELECT balance FROM ledger_accounts WHERE kind = $1 AND owner_id = $2 AND currency = $3"
}

func balance(row *sql.Row) (int64, error) {
	var b int64
	err := row.Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return b, err
}

// Movement is one entry of a transaction, with what it was and when.
type Movement struct {
	IdempotencyKey  string
	TransactionKind string
	AccountKind     string
	AccountOwner    string
	Amount          int64
	At              time.Time
}

// Movements are the entries of the transactions posted under keys, oldest first:
// what reports check their own figures against. Keys, not references, find them:
// they have an index, which every posting pays for already.
func (l *Ledger) Movements(ctx context.Context, keys []string) ([]Movement, error) {
	return l.movements(ctx, l.db.Read(), keys)
}

// MovementsTx is Movements read inside tx: a transaction that holds locks must not
// wait for another connection of the pool.
func (l *Ledger) MovementsTx(ctx context.Context, tx *sql.Tx, keys []string) ([]Movement, error) {
	return l.movements(ctx, tx, keys)
}

func (l *Ledger) movements(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, keys []string) ([]Movement, error) {
	var out []Movement
	for len(keys) > 0 {
		n := min(len(keys), 500)
		chunk := keys[:n]
		keys = keys[n:]
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, r := range chunk {
			args[i], marks[i] = r, fmt.Sprintf("$%d", i+1)
		}
		rows, err := q.QueryContext(ctx, `SELECT t.idempotency_key, t.kind, a.kind, a.owner_id, e.amount, t.created_at
			FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id
			WHERE t.idempotency_key IN (`+strings.Join(marks, ", ")+`) ORDER BY t.created_at, t.id, e.position`, args...)
		if err != nil {
			return nil, fmt.Errorf("ledger: movements: %w", err)
		}
		for rows.Next() {
			var m Movement
			if err := rows.Scan(&m.IdempotencyKey, &m.TransactionKind, &m.AccountKind, &m.AccountOwner, &m.Amount, &m.At); err != nil {
				rows.Close()
				return nil, fmt.Errorf("ledger: movements: %w", err)
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Line is one movement of an account, for its history.
type Line struct {
	TransactionID string
	Kind          string
	Description   string
	Reference     string
	Amount        int64
	At            time.Time
}

// History returns an account's movements, newest first.
func (l *Ledger) History(ctx context.Context, ref Ref, limit int) ([]Line, error) {
	rows, err := l.db.Read().QueryContext(ctx, `SELECT t.id, t.kind, t.description, t.reference, e.amount, e.created_at
		FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id JOIN ledger_transactions t ON t.id = e.transaction_id
		WHERE a.kind = $1 AND a.owner_id = $2 AND a.currency = $3 ORDER BY e.created_at DESC, e.transaction_id DESC LIMIT $4`, ref.Kind, ref.Owner, Currency, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: history: %w", err)
	}
	defer rows.Close()
	var out []Line
	for rows.Next() {
		var ln Line
		if err := rows.Scan(&ln.TransactionID, &ln.Kind, &ln.Description, &ln.Reference, &ln.Amount, &ln.At); err != nil {
			return nil, fmt.Errorf("ledger: history: %w", err)
		}
		out = append(out, ln)
	}
	return out, rows.Err()
}

// Report is what Verify found.
type Report struct {
	Transactions int // each must balance: its entries sum to zero
	Stored       int // wallets and residents' accounts: the stored balance must be the sum of the entries
	System       int // processor, platform and the like: no stored balance, only the sum of the entries
	Problems     []string
}

// Verify checks that every transaction balances, that every stored balance equals
// the sum of its entries and is not below zero where it may not be, and that the
// system accounts, which keep no stored balance (see floored), hold none.
func (l *Ledger) Verify(ctx context.Context) (Report, error) {
	var r Report
	rows, err := l.db.Read().QueryContext(ctx, `SELECT t.id, COALESCE(SUM(e.amount), 0), COUNT(e.transaction_id) FROM ledger_transactions t
		LEFT JOIN ledger_entries e ON e.transaction_id = t.id GROUP BY t.id`)
	if err != nil {
		return r, fmt.Errorf("ledger: verify: %w", err)
	}
	for rows.Next() {
		var id string
		var sum, n int64
		if err := rows.Scan(&id, &sum, &n); err != nil {
			rows.Close()
			return r, err
		}
		r.Transactions++
		if sum != 0 || n < 2 {
			r.Problems = append(r.Problems, fmt.Sprintf("transaction %s does not balance: its %d entries sum to %d", id, n, sum))
		}
	}
	rows.Close()
	rows, err = l.db.Read().QueryContext(ctx, `SELECT a.id, a.kind, a.owner_id, a.balance, a.allow_negative, COALESCE(SUM(e.amount), 0)
		FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id GROUP BY a.id, a.kind, a.owner_id, a.balance, a.allow_negative`)
	if err != nil {
		return r, fmt.Errorf("ledger: verify: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, kind, owner string
		var balance, sum int64
		var negative bool
		if err := rows.Scan(&id, &kind, &owner, &balance, &negative, &sum); err != nil {
			return r, err
		}
		if !floored(kind) {
			r.System++
			if balance != 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("account %s (%s) keeps no stored balance, but its balance column holds %d (its entries sum to %d)", id, kind, balance, sum))
			}
			if sum < 0 && !negative {
				r.Problems = append(r.Problems, fmt.Sprintf("account %s (%s) is below zero: %d", id, kind, sum))
			}
			continue
		}
		r.Stored++
		if balance != sum {
			r.Problems = append(r.Problems, fmt.Sprintf("account %s (%s %s) holds %d but its entries sum to %d", id, kind, owner, balance, sum))
		}
		if balance < 0 && !negative {
			r.Problems = append(r.Problems, fmt.Sprintf("account %s (%s %s) is below zero: %d", id, kind, owner, balance))
		}
	}
	return r, rows.Err()
}
