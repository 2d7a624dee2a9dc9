package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPConfig is how to reach the SMTP server.
type SMTPConfig struct {
	Host     string
	Port     int
	TLS      string // none, starttls, tls
	User     string
	Password string
}

// SMTPSender delivers through an SMTP server, one connection per message: mail is
// sent by background jobs a few at a time, so pooling would gain little.
type SMTPSender struct{ cfg SMTPConfig }

// NewSMTPSender returns a sender for cfg.
func NewSMTPSender(cfg SMTPConfig) *SMTPSender { return &SMTPSender{cfg: cfg} }

// Send delivers m.
func (s *SMTPSender) Send(ctx context.Context, m *gomail.Msg) error {
	opts := []gomail.Option{gomail.WithPort(s.cfg.Port), gomail.WithTimeout(30 * time.Second)}
	switch s.cfg.TLS {
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.User != "" {
		auth := gomail.SMTPAuthAutoDiscover
		if s.cfg.TLS == "none" {
			// The operator chose a plain connection (a relay on the same host or
			// network); without this the client refuses to authenticate at all.
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(s.cfg.User), gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	return c.DialAndSendWithContext(ctx, m)
}

// OutboxSender writes each message as an .eml file into a folder: the default when
// no SMTP server is configured, so a demo or a development server shows its mail.
type OutboxSender struct {
	dir string
	log *slog.Logger
}

// NewOutboxSender returns a sender writing into dir, creating it if needed.
func NewOutboxSender(dir string, log *slog.Logger) (*OutboxSender, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("mail: outbox folder %s: %w", dir, err)
	}
	return &OutboxSender{dir: dir, log: log}, nil
}

// Dir is the outbox folder.
func (o *OutboxSender) Dir() string { return o.dir }

// Send writes m to a new file, complete or not at all. The message is rendered
// into memory first and written with one call: written straight to the file, its
// many small pieces were a system call each.
func (o *OutboxSender) Send(_ context.Context, m *gomail.Msg) error {
	var body bytes.Buffer
	if _, err := m.WriteTo(&body); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := time.Now().UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b) + ".eml"
	tmp, err := os.CreateTemp(o.dir, ".writing-*")
	if err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	_, err = tmp.Write(body.Bytes())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	path := filepath.Join(o.dir, name)
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("mail: outbox: %w", err)
	}
	o.log.Info("mail written to outbox", "file", path)
	return nil
}
