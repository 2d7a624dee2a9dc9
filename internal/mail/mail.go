// Package mail owns outgoing email: templates in English and Spanish with a text and
// an HTML part, a durable "mail.send" job per message, and the two ways out: an SMTP
// server, or .eml files in an outbox folder when none is configured.
//
// A message is queued in the transaction of the change that causes it and rendered
// and sent by the job, so a crash between the two loses nothing. Mail often carries
// codes and links that grant access; none of its content is ever logged.
package mail

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"

	gomail "github.com/wneessen/go-mail"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/jobs"
)

// JobKind is the job that renders and sends one message.
const JobKind = "mail.send"

// locales are the languages every template exists in; the first is the fallback.
var locales = []string{"en", "es"}

// Locales lists the languages of the mail templates; the list is a copy, so changing it changes nothing.
func Locales() []string { return slices.Clone(locales) }

//go:embed templates
var templateFiles embed.FS

// Message is one email to send: a template, its language and its data.
type Message struct {
	To       string            `json:"to"`
	Template string            `json:"template"`
	Locale   string            `json:"locale"`
	Data     map[string]string `json:"data,omitempty"`
	// Secret marks mail that carries a one-time code or link: it is retried only for
	// as long as such a code lives, and its content is cleared when the job ends.
	Secret bool `json:"secret,omitempty"`
	// Attachments go with the mail as files (a visit's calendar entry).
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is a small file sent with a mail.
type Attachment struct {
	Name        string `json:"name"`         // the file name the reader sees
	ContentType string `json:"content_type"` // e.g. text/calendar; charset=utf-8; method=PUBLISH
	Body        string `json:"body"`
}

// Enqueue queues msg inside tx; it is sent after the transaction commits.
func Enqueue(ctx context.Context, db *database.DB, tx *sql.Tx, msg Message) error {
	_, err := enqueue(ctx, db, tx, msg, nil)
	return err
}

// EnqueueHanded is Enqueue that gives the job to this server's workers through h
// (see jobs.Handoff): the caller hands it once tx has committed. For mail sent on
// a busy path, where a worker's claim would cost the one writer (a deposit's
// receipt).
func EnqueueHanded(ctx context.Context, db *database.DB, tx *sql.Tx, msg Message, h *jobs.Handoff) error {
	_, err := enqueue(ctx, db, tx, msg, h)
	return err
}

// EnqueueID is Enqueue that also returns the id of the job that will send msg.
func EnqueueID(ctx context.Context, db *database.DB, tx *sql.Tx, msg Message) (int64, error) {
	return enqueue(ctx, db, tx, msg, nil)
}

func enqueue(ctx context.Context, db *database.DB, tx *sql.Tx, msg Message, h *jobs.Handoff) (int64, error) {
	if msg.To == "" || msg.Template == "" {
		return 0, errors.New("mail: enqueue: message needs a recipient and a template")
	}
	opts := jobs.EnqueueOptions{Handoff: h}
	if msg.Secret {
		opts.Sensitive, opts.MaxAttempts = true, 10 // about half an hour of retries
	}
	id, err := jobs.Enqueue(ctx, db, tx, JobKind, msg, opts)
	if err != nil {
		return 0, fmt.Errorf("mail: %w", err)
	}
	return id, nil
}

// Sender delivers a finished message.
type Sender interface {
	Send(ctx context.Context, m *gomail.Msg) error
}

// Service renders and sends queued messages.
type Service struct {
	from    string
	baseURL string
	sender  Sender
	log     *slog.Logger
	// Parsed templates by file name: the files are embedded and never change, and
	// parsing them for each mail was most of composing one.
	texts sync.Map // name.locale.txt -> *texttemplate.Template
	pages sync.Map // name.locale.html -> *htmltemplate.Template
}

// NewService returns the mail service; from is the sender address and baseURL the
// server's public URL, given to every template.
func NewService(from, baseURL string, sender Sender, log *slog.Logger) *Service {
	return &Service{from: from, baseURL: baseURL, sender: sender, log: log}
}

// HandleJob is the jobs.Handler of JobKind.
func (s *Service) HandleJob(ctx context.Context, payload json.RawMessage) error {
	var msg Message
	if err := json.Unmarshal(payload, &msg); err != nil {
		return jobs.Permanent(fmt.Errorf("mail: bad job payload: %w", err))
	}
	m, err := s.Compose(msg)
	if err != nil {
		return jobs.Permanent(err)
	}
	if err := s.sender.Send(ctx, m); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			return jobs.Permanent(fmt.Errorf("mail: %s rejected by the server: %w", msg.Template, err))
		}
		return fmt.Errorf("mail: send %s: %w", msg.Template, err)
	}
	s.log.Info("mail sent", "template", msg.Template, "locale", msg.Locale)
	return nil
}

// Compose renders msg into a multipart message with a text and an HTML part.
func (s *Service) Compose(msg Message) (*gomail.Msg, error) {
	locale := msg.Locale
	if !isLocale(locale) {
		locale = locales[0]
	}
	data := map[string]string{"BaseURL": s.baseURL}
	for k, v := range msg.Data {
		data[k] = v
	}
	subject, text, err := s.renderText(msg.Template, locale, data)
	if err != nil {
		return nil, err
	}
	html, err := s.renderHTML(msg.Template, locale, subject, data)
	if err != nil {
		return nil, err
	}
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(s.from); err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", s.from, err)
	}
	if err := m.To(msg.To); err != nil {
		return nil, fmt.Errorf("mail: recipient: %w", err)
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageID()
	m.SetGenHeader(gomail.HeaderContentLang, locale)
	m.SetBodyString(gomail.TypeTextPlain, text)
	m.AddAlternativeString(gomail.TypeTextHTML, html)
	for _, a := range msg.Attachments {
		if err := m.AttachReader(a.Name, strings.NewReader(a.Body), gomail.WithFileContentType(gomail.ContentType(a.ContentType))); err != nil {
			return nil, fmt.Errorf("mail: attach %s: %w", a.Name, err)
		}
	}
	return m, nil
}

func isLocale(l string) bool {
	for _, x := range locales {
		if l == x {
			return true
		}
	}
	return false
}

// renderText renders NAME.LOCALE.txt, whose first line is "Subject: ...".
func (s *Service) renderText(name, locale string, data map[string]string) (subject, body string, err error) {
	file := name + "." + locale + ".txt"
	t, _ := s.texts.Load(file)
	if t == nil {
		src, err := fs.ReadFile(templateFiles, "templates/"+file)
		if err != nil {
			return "", "", fmt.Errorf("mail: no template %s.%s: %w", name, locale, err)
		}
		parsed, err := texttemplate.New(name).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return "", "", fmt.Errorf("mail: template %s.%s: %w", name, locale, err)
		}
		t, _ = s.texts.LoadOrStore(file, parsed)
	}
	var b bytes.Buffer
	if err := t.(*texttemplate.Template).Execute(&b, data); err != nil {
		return "", "", fmt.Errorf("mail: template %s.%s: %w", name, locale, err)
	}
	first, rest, _ := strings.Cut(b.String(), "\n")
	subject, ok := strings.CutPrefix(first, "Subject: ")
	if !ok {
		return "", "", fmt.Errorf("mail: template %s.%s: first line must be \"Subject: ...\"", name, locale)
	}
	return strings.TrimSpace(subject), strings.TrimLeft(rest, "\n"), nil
}

var footers = map[string]string{
	"en": "You get this email because of your Kinlink account. Kinlink never asks for your password by email.",
	"es": "Recibe este correo por su cuenta de Kinlink. Kinlink nunca le pedirá su contraseña por correo.",
}

func (s *Service) renderHTML(name, locale, subject string, data map[string]string) (string, error) {
	file := name + "." + locale + ".html"
	var t *htmltemplate.Template
	if v, ok := s.pages.Load(file); ok {
		t = v.(*htmltemplate.Template)
	} else {
		parsed, err := htmltemplate.New("layout.html").Option("missingkey=error").ParseFS(templateFiles, "templates/layout.html", "templates/"+file)
		if err != nil {
			return "", fmt.Errorf("mail: template %s.%s.html: %w", name, locale, err)
		}
		v, _ := s.pages.LoadOrStore(file, parsed)
		t = v.(*htmltemplate.Template)
	}
	var body bytes.Buffer
	if err := t.ExecuteTemplate(&body, name+"."+locale+".html", data); err != nil {
		return "", fmt.Errorf("mail: template %s.%s.html: %w", name, locale, err)
	}
	var page bytes.Buffer
	err := t.ExecuteTemplate(&page, "layout.html", map[string]any{
		"Locale": locale, "Subject": subject, "Footer": footers[locale],
		"Body": htmltemplate.HTML(body.String()), // rendered and escaped just above
	})
	if err != nil {
		return "", fmt.Errorf("mail: layout: %w", err)
	}
	return page.String(), nil
}

// TemplateNames lists every template, for checks that each exists in every locale.
func TemplateNames() []string {
	entries, _ := fs.ReadDir(templateFiles, "templates")
	seen := map[string]bool{}
	var names []string
	for _, e := range entries {
		name, _, ok := strings.Cut(e.Name(), ".")
		if ok && name != "layout" && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}
