package mail_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

const baseURL = "https://kinlink.example.org"

func queue(t *testing.T, db *database.DB, msgs ...mail.Message) {
	t.Helper()
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		for _, m := range msgs {
			if err := mail.Enqueue(context.Background(), db, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func runner(db *database.DB, svc *mail.Service) *jobs.Runner {
	r := jobs.NewRunner(db, slog.New(slog.NewTextHandler(io.Discard, nil)), 1, time.Minute)
	r.Handle(mail.JobKind, svc.HandleJob)
	return r
}

func TestEveryTemplateExistsInEveryLocaleWithBothParts(t *testing.T) {
	names := mail.TemplateNames()
	if len(names) == 0 {
		t.Fatal("no templates")
	}
	for _, n := range names {
		for _, l := range mail.Locales() {
			for _, ext := range []string{"txt", "html"} {
				if _, err := fs.Stat(os.DirFS("templates"), n+"."+l+"."+ext); err != nil {
					t.Errorf("template %s has no %s %s part", n, l, ext)
				}
			}
		}
	}
}

func TestQueuedMailArrivesOverSMTPInItsLanguage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		srv := mailtest.Start(t)
		svc := mail.NewService("Kinlink <no-reply@kinlink.example.org>", baseURL,
			mail.NewSMTPSender(mail.SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: "none"}), slog.New(slog.NewTextHandler(io.Discard, nil)))
		queue(t, db,
			mail.Message{To: "ana@example.com", Template: "test", Locale: "es"},
			mail.Message{To: "bob@example.com", Template: "test", Locale: "en"})
		r := runner(db, svc)
		for range 2 {
			if ran, err := r.RunOne(context.Background()); !ran || err != nil {
				t.Fatalf("RunOne = %v, %v", ran, err)
			}
		}
		got := srv.WaitFor(t, 2, 10*time.Second)
		byTo := map[string]mailtest.Message{}
		for _, m := range got {
			byTo[m.To[0]] = m
		}
		es, en := byTo["ana@example.com"], byTo["bob@example.com"]
		if es.Subject != "Mensaje de prueba de Kinlink" || !strings.Contains(es.Text, "el correo saliente funciona") {
			t.Errorf("Spanish mail: subject %q, text %q", es.Subject, es.Text)
		}
		if en.Subject != "Kinlink test message" || !strings.Contains(en.Text, baseURL) {
			t.Errorf("English mail: subject %q, text %q", en.Subject, en.Text)
		}
		if !strings.Contains(en.HTML, `href="`+baseURL+`"`) || !strings.Contains(es.HTML, `lang="es"`) {
			t.Errorf("HTML parts: %q / %q", en.HTML, es.HTML)
		}
		if en.From != "no-reply@kinlink.example.org" || en.Header.Get("Message-Id") == "" {
			t.Errorf("envelope from %q, message id %q", en.From, en.Header.Get("Message-Id"))
		}
	})
}

func TestSMTPAuthentication(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+filepath.Join(t.TempDir(), "k.db"))
	srv := mailtest.StartWithAuth(t, "kinlink", "s3cret-relay")
	svc := mail.NewService("no-reply@kinlink.example.org", baseURL,
		mail.NewSMTPSender(mail.SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: "none", User: "kinlink", Password: "s3cret-relay"}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	queue(t, db, mail.Message{To: "ana@example.com", Template: "test", Locale: "en"})
	runner(db, svc).RunOne(context.Background())
	if got := srv.WaitFor(t, 1, 10*time.Second); got[0].User != "kinlink" {
		t.Fatalf("mail arrived as user %q", got[0].User)
	}
}

func TestUnreachableSMTPServerMeansRetryLater(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+filepath.Join(t.TempDir(), "k.db"))
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	svc := mail.NewService("no-reply@kinlink.example.org", baseURL,
		mail.NewSMTPSender(mail.SMTPConfig{Host: "127.0.0.1", Port: port, TLS: "none"}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	queue(t, db, mail.Message{To: "ana@example.com", Template: "test", Locale: "en"})
	runner(db, svc).RunOne(context.Background())
	all, err := jobs.List(context.Background(), db, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].State != jobs.Available || all[0].LastError == "" {
		t.Fatalf("job after a failed send: %+v", all)
	}
}

func TestOutboxWritesEmlAndLogsNoContent(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+filepath.Join(t.TempDir(), "k.db"))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := filepath.Join(t.TempDir(), "outbox")
	out, err := mail.NewOutboxSender(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	svc := mail.NewService("no-reply@kinlink.example.org", baseURL, out, log)
	queue(t, db, mail.Message{To: "ana@example.com", Template: "test", Locale: "en", Data: map[string]string{"Code": "493817"}})
	runner(db, svc).RunOne(context.Background())

	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("outbox has %d .eml files", len(files))
	}
	raw, _ := os.ReadFile(files[0])
	if !bytes.Contains(raw, []byte("Subject: Kinlink test message")) || !bytes.Contains(raw, []byte("To: <ana@example.com>")) {
		t.Fatalf("outbox file is not the message:\n%s", raw)
	}
	if !strings.Contains(logs.String(), files[0]) {
		t.Errorf("log does not say where the mail is: %s", logs.String())
	}
	for _, secret := range []string{"ana@example.com", baseURL, "outgoing mail works", "493817"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log shows mail content %q: %s", secret, logs.String())
		}
	}
}

func TestUnknownTemplateFailsForGood(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+filepath.Join(t.TempDir(), "k.db"))
	out, _ := mail.NewOutboxSender(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc := mail.NewService("no-reply@kinlink.example.org", baseURL, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	queue(t, db, mail.Message{To: "ana@example.com", Template: "no-such-template", Locale: "en"})
	runner(db, svc).RunOne(context.Background())
	all, _ := jobs.List(context.Background(), db, "", 10)
	if all[0].State != jobs.Failed {
		t.Fatalf("job with a missing template: %+v", all[0])
	}
}

// Mail jobs outlive the binary that queued them: a template that gained a field still
// renders the data an earlier version queued (the field is optional there).
func TestTemplatesRenderWhatEarlierVersionsQueued(t *testing.T) {
	svc := mail.NewService("no-reply@kinlink.example.org", baseURL, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, m := range []mail.Message{
		{To: "ana@example.org", Template: "topup_receipt", Data: map[string]string{"Amount": "$5.00", "Fee": "$0.00", "Charge": "ch_1", "Reference": "r1"}},
		{To: "ana@example.org", Template: "message_rejected", Data: map[string]string{"Reason": "other", "ReasonText": "", "Note": "", "Refund": "$0.10", "Stamps": "1"}},
		{To: "ana@example.org", Template: "deposit_refunded", Data: map[string]string{"Amount": "$20.00", "Fee": "$1.95", "Total": "$21.95",
			"Resident": "José García", "Number": "A100", "Confirmation": "KL-2345-6789", "State": "cancelled", "Reason": "", "Sender": "Ana",
			"ID": "d1", "Facility": "Florida State Prison", "Refund": "re_1"}},
	} {
		for _, l := range mail.Locales() {
			m.Locale = l
			if _, err := svc.Compose(m); err != nil {
				t.Errorf("%s in %s with the data of an earlier version: %v", m.Template, l, err)
			}
		}
	}
}
