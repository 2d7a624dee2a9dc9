package messaging_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
)

var ctx = context.Background()

// trustWorld is Florida DOC, where replies cost 2 stamps of 25¢: José (A100) has
// $12.00 of trust money from a real deposit of Ana's, Kim (A200) has none; Ana
// writes to both. Residents may record VideoGram replies, which the mail
// reviewer of FSP reviews.
type trustWorld struct {
	db       *database.DB
	fac      *facility.Service
	ledger   *ledger.Ledger
	deposits *deposits.Service
	messages *messaging.Service
	clips    *fakeClips

	agencyID         string
	jose, kim        facility.Resident
	ana              string            // Ana's account
	contact          map[string]string // Ana's contact with each resident, by resident id
	admin, reviewer  facility.Access
	replyPriceCents  int64
	joseTrustInitial int64
}

// fakeClips takes every upload as a clip being converted (the test tells
// messaging when it is ready or failed), or refuses them all with fail.
type fakeClips struct{ fail error }

func (c *fakeClips) Begin(context.Context, *sql.Tx, string, string, string, time.Duration) error {
	return c.fail
}

func newTrustWorld(t *testing.T, db *database.DB) *trustWorld {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	common, err := identity.LoadCommonPasswords()
	must(err)
	id, err := identity.NewService(ctx, db, identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 2, 20, time.Second),
		common, identity.DefaultConfig(), log)
	must(err)
	w := &trustWorld{db: db, fac: facility.NewService(db, id, log), ledger: ledger.New(db), clips: &fakeClips{}, contact: map[string]string{},
		replyPriceCents: 50, joseTrustInitial: 1200}
	c := contacts.NewService(db, w.fac)
	w.deposits = deposits.NewService(db, w.fac, c, w.ledger, ledger.Sandbox{}, log, nil)
	w.messages = messaging.NewService(db, w.fac, c, w.ledger, media.Disk{Dir: t.TempDir()}, media.NewPhotos(media.DecodeBudget), func() {})
	w.messages.UseTrust(w.deposits)
	w.messages.UseClips(w.clips)

	fl, err := w.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "FLDOC", Name: "Florida DOC", State: "FL"})
	must(err)
	w.agencyID = fl.ID
	fsp, err := w.fac.CreateFacility(ctx, facility.Operator, fl.ID, facility.FacilityInput{Code: "FSP", Name: "Florida State Prison", Kind: "prison",
		TimeZone: "America/New_York", Population: 1400})
	must(err)
	_, err = w.fac.ImportRoster(ctx, facility.Operator, fl.ID, strings.NewReader("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
		"A100,García,José,FSP,B-1,active,\nA200,Lee,Kim,FSP,C-2,active,\n"), facility.RosterOptions{Apply: true})
	must(err)
	staff := func(email string, g facility.Grant) facility.Access {
		t.Helper()
		accountID, err := id.EnsureStaff(ctx, email, "Staff "+email, "staff pass 42!", "JBSWY3DPEHPK3PXP")
		must(err)
		must(w.fac.GrantRole(ctx, facility.Operator, fl.ID, accountID, g.Role, g.FacilityID))
		a, err := w.fac.AccessOf(ctx, accountID)
		must(err)
		return a
	}
	w.admin = staff("fl.admin@example.org", facility.Grant{Role: facility.AgencyAdmin})
	w.reviewer = staff("reviewer@example.org", facility.Grant{Role: facility.MailReviewer, FacilityID: fsp.ID})
	must(w.fac.UpdatePolicies(ctx, facility.Operator, fl.ID, facility.Policies{StampPriceCents: 25, MessageMaxChars: 5000, VideoGramSeconds: 30,
		MessageRetentionDays: 365, RecordingRetentionDays: 365, ApprovalForMessages: false}))
	must(w.messages.SetReview(ctx, w.admin, messaging.ReviewSettings{ReplyStamps: 2, VideoGramStamps: 3, ReviewVideoGrams: true,
		VideoGramRetentionDays: 90, VideoGramReplies: true}))

	_, err = id.EnsureAccount(ctx, identity.SignupRequest{Email: "ana@example.org", Password: "a long family passphrase", FullName: "Ana García",
		SecurityQuestion: "first_pet", SecurityAnswer: "Canela", Locale: "en"})
	must(err)
	a, err := id.AccountByEmail(ctx, "ana@example.org")
	must(err)
	w.ana = a.ID
	for _, number := range []string{"A100", "A200"} {
		found, err := w.fac.SearchResidents(ctx, facility.ResidentSearch{AgencyCode: "FLDOC", Number: number})
		if err != nil || len(found) != 1 {
			t.Fatalf("resident %s: %v %v", number, found, err)
		}
		r, err := w.fac.Resident(ctx, found[0].ID)
		must(err)
		ct, err := c.Request(ctx, w.ana, r.ID)
		must(err)
		if ct.Status != contacts.Approved {
			must(c.Decide(ctx, w.admin, ct.ID, true, ""))
		}
		w.contact[r.ID] = ct.ID
		if number == "A100" {
			w.jose = r
		} else {
			w.kim = r
		}
	}
	// José's trust money comes from a real deposit, as a family makes one.
	d, err := w.deposits.Deposit(ctx, w.ana, deposits.Request{Recipient: deposits.Recipient{ContactID: w.contact[w.jose.ID]},
		AmountCents: w.joseTrustInitial, Token: ledger.SandboxCard, Key: "trust-1",
		Sender: deposits.Sender{Name: "Ana García", Address: "12 Palm St, Miami FL 33101"}, Email: "ana@example.org", Locale: "en"})
	if err != nil || d.State != deposits.Posted {
		t.Fatalf("deposit: %+v %v", d, err)
	}
	if b := w.trust(t, w.jose); b != w.joseTrustInitial {
		t.Fatalf("José's trust money after the deposit: %d", b)
	}
	return w
}

// trust is a resident's trust balance, as the kiosk reads it.
func (w *trustWorld) trust(t *testing.T, r facility.Resident) int64 {
	t.Helper()
	tr, err := w.deposits.TrustOf(ctx, r, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tr.BalanceCents
}

func (w *trustWorld) verify(t *testing.T) {
	t.Helper()
	r, err := w.ledger.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("ledger: %v", r.Problems)
	}
}

// feed is the agency's trust feed.
func (w *trustWorld) feed(t *testing.T) []deposits.FeedEntry {
	t.Helper()
	rows, _, err := w.deposits.Feed(ctx, w.agencyID, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func feedOf(rows []deposits.FeedEntry, kind string) []deposits.FeedEntry {
	var out []deposits.FeedEntry
	for _, r := range rows {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// replies are the resident's replies in a conversation.
func (w *trustWorld) replies(t *testing.T, r facility.Resident) []messaging.Message {
	t.Helper()
	msgs, err := w.messages.Thread(ctx, r.ID, w.contact[r.ID], false)
	if err != nil {
		t.Fatal(err)
	}
	var out []messaging.Message
	for _, m := range msgs {
		if m.Direction == messaging.FromResident {
			out = append(out, m)
		}
	}
	return out
}

// Where replies are priced and the family prepaid none, a resident pays for a
// reply from their trust money only when they choose to: the price is told
// first, the reply and its spending are one transaction, a retry pays once, the
// agency's feed has the spending, and a prepaid reply is used before any of the
// resident's money.
func TestResidentPaysForAReplyFromTrustOnlyWhenTheyChoose(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := newTrustWorld(t, db)
		jose, contact := w.jose, w.contact[w.jose.ID]

		price, err := w.messages.ReplyPrice(ctx, jose.ID, contact)
		if err != nil || price != (messaging.ReplyPrice{Stamps: 2, Cents: w.replyPriceCents, FromTrust: true}) {
			t.Fatalf("the price of a reply: %+v %v", price, err)
		}

		// Not chosen: refused as before, and nothing taken.
		if _, err := w.messages.Reply(ctx, jose.ID, contact, messaging.ReplyDraft{Text: "Hola mamá", Key: "r-unasked"}); !errors.Is(err, messaging.ErrNoPrepaidReply) {
			t.Fatalf("a reply without the choice to pay: %v", err)
		}
		if b := w.trust(t, jose); b != w.joseTrustInitial {
			t.Errorf("a reply nobody chose to pay for took trust money: %d", b)
		}
		if got := len(w.replies(t, jose)); got != 0 {
			t.Errorf("a refused reply was stored: %d", got)
		}

		// Chosen: paid once, even when the kiosk sends it twice.
		var first messaging.Message
		for i := range 2 {
			m, err := w.messages.Reply(ctx, jose.ID, contact, messaging.ReplyDraft{Text: "Hola mamá", Key: "r-1", FromTrust: true})
			if err != nil {
				t.Fatalf("reply paid from trust (try %d): %v", i+1, err)
			}
			if i == 0 {
				first = m
			} else if m.ID != first.ID {
				t.Errorf("the retry is another reply: %s, %s", first.ID, m.ID)
			}
		}
		if b := w.trust(t, jose); b != w.joseTrustInitial-w.replyPriceCents {
			t.Errorf("after one reply paid from trust the balance is %d, want %d", b, w.joseTrustInitial-w.replyPriceCents)
		}
		if got := w.replies(t, jose); len(got) != 1 || got[0].State != messaging.Sent {
			t.Errorf("replies: %+v", got)
		}
		spent := feedOf(w.feed(t), deposits.FeedSpent)
		if len(spent) != 1 || spent[0].AmountCents != -w.replyPriceCents || spent[0].ResidentNumber != "A100" ||
			!strings.Contains(spent[0].Memo, "Reply stamps") || !strings.Contains(spent[0].Memo, "Ana García") {
			t.Errorf("the agency's feed of the spending: %+v", spent)
		}

		// A reply the family prepaid is used first; the choice then costs nothing.
		fundWallet(t, w, 1000)
		if _, err := w.messages.Send(ctx, w.ana, contact, messaging.Draft{Text: "Te pago la respuesta", PrepaidReply: true, Key: "m-prepaid"}); err != nil {
			t.Fatal(err)
		}
		if price, err := w.messages.ReplyPrice(ctx, jose.ID, contact); err != nil || price.Prepaid != 1 || price.FromTrust {
			t.Errorf("with a prepaid reply: %+v %v", price, err)
		}
		if _, err := w.messages.Reply(ctx, jose.ID, contact, messaging.ReplyDraft{Text: "Gracias", Key: "r-2", FromTrust: true}); err != nil {
			t.Fatal(err)
		}
		if b := w.trust(t, jose); b != w.joseTrustInitial-w.replyPriceCents {
			t.Errorf("a prepaid reply took trust money too: %d", b)
		}
		w.verify(t)
	})
}

// fundWallet puts money in Ana's wallet, as a card top-up does.
func fundWallet(t *testing.T, w *trustWorld, cents int64) {
	t.Helper()
	err := w.db.InTx(ctx, func(tx *sql.Tx) error {
		_, _, err := w.ledger.Post(ctx, tx, ledger.Transaction{Kind: "topup", IdempotencyKey: "test-topup:" + time.Now().String(),
			Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -cents}, {Account: ledger.WalletOf(w.ana), Amount: cents}},
			Card:    ledger.CardRef{Kind: ledger.CardCharge, ChargeID: "ch_test_topup"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A resident whose trust money does not cover a reply is told so, and nothing
// is sent or taken; where the server takes no trust money, the choice changes
// nothing.
func TestAReplyTrustMoneyDoesNotCoverIsNotSent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := newTrustWorld(t, db)
		kim, contact := w.kim, w.contact[w.kim.ID]
		if price, err := w.messages.ReplyPrice(ctx, kim.ID, contact); err != nil || !price.FromTrust || price.Cents != w.replyPriceCents {
			t.Fatalf("Kim's reply price: %+v %v", price, err)
		}
		if _, err := w.messages.Reply(ctx, kim.ID, contact, messaging.ReplyDraft{Text: "Hola", Key: "k-1", FromTrust: true}); !errors.Is(err, deposits.ErrTrustShort) {
			t.Fatalf("a reply Kim's trust money does not cover: %v", err)
		}
		if _, err := w.messages.ReplyVideoGram(ctx, kim.ID, contact, messaging.VideoGramReplyDraft{UploadID: "up-1", Key: "k-2", FromTrust: true}); !errors.Is(err, deposits.ErrTrustShort) {
			t.Fatalf("a VideoGram reply Kim's trust money does not cover: %v", err)
		}
		if got := w.replies(t, kim); len(got) != 0 {
			t.Errorf("refused replies were stored: %+v", got)
		}
		var mails int
		if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM jobs WHERE payload LIKE '%message_reply%'").Scan(&mails); err != nil || mails != 0 {
			t.Errorf("the family was told of a reply never sent: %d %v", mails, err)
		}
		if spent := feedOf(w.feed(t), deposits.FeedSpent); len(spent) != 0 {
			t.Errorf("the feed has spending that never happened: %+v", spent)
		}

		// A server without trust money for replies: the choice is not offered,
		// and a reply sent with it anyway still needs a prepaid one.
		plain := messaging.NewService(db, w.fac, contacts.NewService(db, w.fac), w.ledger, media.Disk{Dir: t.TempDir()}, media.NewPhotos(media.DecodeBudget), func() {})
		if price, err := plain.ReplyPrice(ctx, w.jose.ID, w.contact[w.jose.ID]); err != nil || price.FromTrust {
			t.Errorf("a server without trust money offers it: %+v %v", price, err)
		}
		if _, err := plain.Reply(ctx, w.jose.ID, w.contact[w.jose.ID], messaging.ReplyDraft{Text: "Hola", Key: "p-1", FromTrust: true}); !errors.Is(err, messaging.ErrNoPrepaidReply) {
			t.Errorf("a reply from trust where none is taken: %v", err)
		}
		if b := w.trust(t, w.jose); b != w.joseTrustInitial {
			t.Errorf("José's trust money: %d", b)
		}
		w.verify(t)
	})
}

// A VideoGram reply paid from trust money is paid with the reply, in its
// transaction (a clip that cannot begin takes nothing); review turning it back,
// or a clip that cannot be used, gives the money back, once.
func TestVideoGramReplyPaidFromTrustIsGivenBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := newTrustWorld(t, db)
		jose, contact := w.jose, w.contact[w.jose.ID]
		send := func(key string) messaging.Message {
			t.Helper()
			m, err := w.messages.ReplyVideoGram(ctx, jose.ID, contact, messaging.VideoGramReplyDraft{UploadID: "up-" + key, Key: key, FromTrust: true})
			if err != nil {
				t.Fatalf("VideoGram reply %s: %v", key, err)
			}
			return m
		}
		after := func(want int64, when string) {
			t.Helper()
			if b := w.trust(t, jose); b != want {
				t.Errorf("%s: José has %d, want %d", when, b, want)
			}
		}

		// A clip that cannot begin: nothing is sent, nothing taken.
		w.clips.fail = errors.New("the upload is gone")
		if _, err := w.messages.ReplyVideoGram(ctx, jose.ID, contact, messaging.VideoGramReplyDraft{UploadID: "up-gone", Key: "v-0", FromTrust: true}); err == nil {
			t.Fatal("a VideoGram reply whose clip could not begin was sent")
		}
		after(w.joseTrustInitial, "a reply that could not begin")
		w.clips.fail = nil

		if _, err := w.messages.ReplyVideoGram(ctx, jose.ID, contact, messaging.VideoGramReplyDraft{UploadID: "up-x", Key: "v-x"}); !errors.Is(err, messaging.ErrNoPrepaidReply) {
			t.Fatalf("a VideoGram reply without the choice to pay: %v", err)
		}

		// Rejected in review: the money comes back, once.
		m := send("v-1")
		after(w.joseTrustInitial-w.replyPriceCents, "a VideoGram reply paid from trust")
		if err := w.messages.ClipReady(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		if err := w.messages.Decide(ctx, w.reviewer, m.ID, false, "coded_language", "Hable claro"); err != nil {
			t.Fatal(err)
		}
		if err := w.messages.Decide(ctx, w.reviewer, m.ID, false, "coded_language", ""); !errors.Is(err, messaging.ErrAlreadyDecided) {
			t.Errorf("decided twice: %v", err)
		}
		after(w.joseTrustInitial, "the rejected reply")

		// A clip that cannot be used: back too, however often it is told.
		m = send("v-2")
		after(w.joseTrustInitial-w.replyPriceCents, "a second VideoGram reply")
		for range 2 {
			if err := w.messages.ClipFailed(ctx, m.ID, media.ClipFault("not_video")); err != nil {
				t.Fatal(err)
			}
		}
		after(w.joseTrustInitial, "the reply that could not be used")

		// Approved: it stays paid.
		m = send("v-3")
		if err := w.messages.ClipReady(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		if err := w.messages.Decide(ctx, w.reviewer, m.ID, true, "", ""); err != nil {
			t.Fatal(err)
		}
		after(w.joseTrustInitial-w.replyPriceCents, "the approved reply")

		feed := w.feed(t)
		if spent, back := feedOf(feed, deposits.FeedSpent), feedOf(feed, deposits.FeedSpendRefunded); len(spent) != 3 || len(back) != 2 ||
			back[0].AmountCents != w.replyPriceCents {
			t.Errorf("the feed: %d spent, %d given back: %+v", len(spent), len(back), feed)
		}
		var sum int64
		for _, r := range feed {
			sum += r.AmountCents
		}
		if sum != w.trust(t, jose) {
			t.Errorf("the feed adds up to %d, the trust account holds %d", sum, w.trust(t, jose))
		}
		w.verify(t)
	})
}
