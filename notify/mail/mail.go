// Package mail sends event reports over SMTP with go-smtp and go-sasl: implicit TLS, STARTTLS (never
// silently downgraded) or plain; AUTH PLAIN or LOGIN as the server offers; retries on transient
// failures only.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/confyaml"
	"github.com/imagehook/imagehook/lang"
	"github.com/imagehook/imagehook/notify"
	"github.com/imagehook/imagehook/outbound"
	"github.com/imagehook/imagehook/retry"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// Config is the SMTP setup: the config file's mail: section, decoded by package config.
type Config struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	TLS      string `yaml:"tls"` // implicit | starttls | none
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is read into Password at load.
	PasswordFile string `yaml:"passwordFile" secretfile:"Password"`
	From         string `yaml:"from"`
	// To receives every report, besides a hook's own recipients.
	To       []string `yaml:"to"`
	Language string   `yaml:"language"` // zh | en
	// CAFile holds extra PEM roots (a company CA), read into CAPEM at load.
	CAFile             string `yaml:"caFile" secretfile:"CAPEM"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify"`
	// Timeout bounds each SMTP connection and command (default 30s).
	Timeout confyaml.Duration `yaml:"timeout"`
	// Deadline bounds one report's whole delivery, retries included (default 60s), so that a
	// server that accepts connections and never answers costs a bounded time.
	Deadline confyaml.Duration `yaml:"deadline"`
	// SubjectTemplate and BodyTemplate replace the embedded templates (both languages) when set;
	// they see the same data (.Event, .Failed, .Image, .Namespace, .Workload, .Container, .Changes,
	// .Steps, .CommitURL).
	SubjectTemplate string `yaml:"subjectTemplate"`
	BodyTemplate    string `yaml:"bodyTemplate"`
	// CAPEM is the content of CAFile, or a CA given inline by the old tool's MAIL_CACERT variable.
	CAPEM string `yaml:"-"`
	// retries and retryBase bound the retries of a transient failure (3, from 2s; tests shorten them).
	retries   int
	retryBase time.Duration
}

// SetDefaults fills what the mail: section leaves out. Package config calls it at load, so that
// check-config shows what is used; New calls it for callers that build a Config themselves.
func (c *Config) SetDefaults() {
	if c.TLS == "" {
		c.TLS = "implicit"
		if c.Port == 587 {
			c.TLS = "starttls"
		} else if c.Port == 25 {
			c.TLS = "none"
		}
	}
	if c.Port == 0 {
		c.Port = map[string]int{"implicit": 465, "starttls": 587, "none": 25}[c.TLS]
	}
	if c.Language == "" {
		c.Language = "zh"
	}
	if c.From == "" {
		c.From = c.Username
	}
	if c.Deadline == 0 {
		c.Deadline = confyaml.Duration(time.Minute)
	}
}

// Notifier mails event reports.
type Notifier struct {
	cfg       Config
	log       *slog.Logger
	tls       *tls.Config
	templates map[string]*template.Template // subject.zh, body.en, …
	// html renders the HTML alternative; nil when the body template is the user's own.
	html *htmltemplate.Template
}

var _ notify.Notifier = (*Notifier)(nil)

// ErrHeader is returned when a header value would contain a line break.
var ErrHeader = errors.New("header value contains a line break")

// New checks cfg and parses the templates.
func New(cfg Config, log *slog.Logger) (*Notifier, error) {
	cfg.SetDefaults()
	if cfg.Timeout == 0 {
		cfg.Timeout = confyaml.Duration(30 * time.Second)
	}
	if cfg.retries == 0 {
		cfg.retries = 3
	}
	if cfg.retryBase == 0 {
		cfg.retryBase = 2 * time.Second
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("mail from %q: %w", cfg.From, err)
	}
	n := &Notifier{cfg: cfg, log: log, templates: map[string]*template.Template{}}
	n.tls = &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.InsecureSkipVerify {
		log.Warn("mail: TLS certificate verification is off (insecureSkipVerify)", "host", cfg.Host)
	}
	if len(cfg.CAPEM) > 0 {
		pool, err := outbound.CertPool([]byte(cfg.CAPEM))
		if err != nil {
			return nil, fmt.Errorf("mail caFile: %w", err)
		}
		n.tls.RootCAs = pool
	}
	custom := map[string]string{"subject": cfg.SubjectTemplate, "body": cfg.BodyTemplate}
	for _, kind := range []string{"subject", "body"} {
		for _, l := range []string{lang.Chinese, lang.English} {
			name := kind + "." + l + ".tmpl"
			var t *template.Template
			var err error
			if custom[kind] != "" {
				t, err = template.New(name).Parse(custom[kind])
			} else {
				t, err = template.New(name).ParseFS(templateFS, "templates/"+name)
			}
			if err != nil {
				return nil, fmt.Errorf("mail %s template: %w", kind, err)
			}
			n.templates[kind+"."+l] = t
		}
	}
	if cfg.BodyTemplate == "" {
		t, err := htmltemplate.ParseFS(templateFS, "templates/body.html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("mail html template: %w", err)
		}
		n.html = t
	}
	return n, nil
}

// htmlLabels are the HTML alternative's words, by language.
var htmlLabels = lang.Words{
	"zh": {"updated": "镜像更新成功", "failed": "镜像更新失败", "event": "事件 ID", "source": "来源", "image": "推送镜像", "commit": "提交链接", "error": "错误"},
	"en": {"updated": "The image was updated", "failed": "The image update failed", "event": "Event", "source": "Source", "image": "Image", "commit": "Commit", "error": "Error"},
}

var _ notify.Member = (*Notifier)(nil)

// Name is "mail".
func (n *Notifier) Name() string { return "mail" }

// Carries returns the group when its first event's outcome is one its hook asked to hear about
// and the mail has a recipient: one mail reports them all.
func (n *Notifier) Carries(evs []*event.Event) []*event.Event {
	if len(evs) == 0 || !notify.Wanted(evs[0], notify.Failed(evs[0])) {
		return nil
	}
	if len(n.cfg.To) == 0 && (evs[0].Mail == nil || len(evs[0].Mail.To) == 0) {
		return nil
	}
	return evs
}

// Notify mails the report of a finished event to the hook's and the global recipients: one mail,
// also when other events were carried by the same commit (they are listed in it). The whole
// delivery, retries included, ends at the deadline.
func (n *Notifier) Notify(ctx context.Context, evs ...*event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ev := evs[0]
	failed := notify.Failed(ev)
	if !notify.Wanted(ev, failed) {
		return nil
	}
	to := append([]string(nil), n.cfg.To...)
	language := n.cfg.Language
	if ev.Mail != nil {
		to = append(to, ev.Mail.To...)
		if ev.Mail.Language != "" {
			language = ev.Mail.Language
		}
	}
	if len(to) == 0 {
		return nil
	}
	subject, body, html, err := n.render(ev, evs[1:], language, failed)
	if err != nil {
		return err
	}
	return n.send(ctx, to, subject, body, html)
}

type stepView struct {
	event.Step
	Label string
}

type changeView struct {
	event.Change
	Namespace string
}

type view struct {
	Event *event.Event
	// Others are the events carried by the same commit, reported in this one mail.
	Others    []*event.Event
	Failed    bool
	Image     string
	Namespace string
	Workload  string
	Container string
	Changes   []changeView
	Steps     []stepView
	CommitURL string
}

func (n *Notifier) render(ev *event.Event, others []*event.Event, language string, failed bool) (subject, text, html string, err error) {
	l := lang.Of(language)
	// In the plain-text body a value with line breaks could show forged lines (a fake "Commit:").
	// Peers' texts are bounded where they are stored; events journaled before that still carry
	// them whole, and a mail shows no more of them than a page does.
	ev = cut(ev.Printable())
	v := view{Event: ev, Failed: failed, Image: ev.Push.Ref()}
	for _, o := range others {
		v.Others = append(v.Others, cut(o.Printable()))
	}
	if len(ev.Targets) > 0 {
		t := ev.Targets[0]
		v.Namespace, v.Workload, v.Container = t.Namespace, t.Workload, t.Container
	}
	labels := lang.Words{
		"zh": {event.StepGit: "Git 提交", event.StepApply: "集群更新"},
		"en": {event.StepGit: "Git commit", event.StepApply: "Cluster apply"},
	}
	for _, s := range ev.Steps {
		if s.Name == event.StepNotify {
			continue
		}
		label := labels.In(l)[s.Name]
		if label == "" {
			label = s.Name
		}
		if s.Cluster != "" {
			label += " (" + s.Cluster + ")"
		}
		v.Steps = append(v.Steps, stepView{Step: s, Label: label})
		for _, c := range s.Changes {
			ns := c.Namespace
			if ns == "" && len(ev.Targets) > 0 {
				ns = ev.Targets[0].Namespace
			}
			v.Changes = append(v.Changes, changeView{Change: c, Namespace: ns})
		}
		if s.URL != "" && s.Status == event.Succeeded {
			v.CommitURL = s.URL
		}
	}
	var subj, body, page bytes.Buffer
	if err := n.templates["subject."+l].Execute(&subj, v); err != nil {
		return "", "", "", fmt.Errorf("mail subject: %w", err)
	}
	if err := n.templates["body."+l].Execute(&body, v); err != nil {
		return "", "", "", fmt.Errorf("mail body: %w", err)
	}
	if n.html != nil {
		if err := n.html.Execute(&page, struct {
			view
			T map[string]string
		}{v, htmlLabels.In(l)}); err != nil {
			return "", "", "", fmt.Errorf("mail html body: %w", err)
		}
	}
	return strings.TrimSpace(subj.String()), body.String(), page.String(), nil
}

// cut bounds the peers' texts of a Printable copy (event.Cut).
func cut(ev *event.Event) *event.Event {
	ev.Error = event.Cut(ev.Error)
	for i := range ev.Steps {
		ev.Steps[i].Detail, ev.Steps[i].Error = event.Cut(ev.Steps[i].Detail), event.Cut(ev.Steps[i].Error)
	}
	return ev
}

// Send delivers one message, retrying transient failures (connection errors, 4xx replies) with
// backoff; a 5xx reply is final.
func (n *Notifier) Send(ctx context.Context, to []string, subject, body string) error {
	return n.send(ctx, to, subject, body, "")
}

// AnnounceStage mails a promotion's notice to the configured recipients and those of the
// candidate's hook (m), when there are any. It returns at once, so that the promotion pass never
// waits for the server; a failure is logged.
func (n *Notifier) AnnounceStage(ctx context.Context, _ []string, m *event.Mail, nt notify.Notice) {
	to := slices.Clone(n.cfg.To)
	if m != nil {
		to = append(to, m.To...)
	}
	if len(to) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	go func() {
		if err := n.Send(ctx, to, nt.Title, nt.Text()); err != nil {
			n.log.Warn("promotion notice not mailed", "title", nt.Title, "err", err)
		}
	}()
}

// ErrTimedOut is returned when a report could not be delivered within the deadline.
var ErrTimedOut = errors.New("timed out")

func (n *Notifier) send(ctx context.Context, to []string, subject, body, html string) error {
	msg, err := n.message(to, subject, body, html, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.Deadline))
	defer cancel()
	err = n.sendRetrying(ctx, to, msg)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("mail to %s: %w after %s", strings.Join(to, ","), ErrTimedOut, time.Duration(n.cfg.Deadline))
	}
	return err
}

func (n *Notifier) sendRetrying(ctx context.Context, to []string, msg []byte) error {
	err := retry.Do(ctx, n.cfg.retries, retry.Backoff{First: n.cfg.retryBase, Max: time.Minute}, func(attempt int) (bool, error) {
		err := n.deliver(ctx, to, msg)
		if err != nil && transient(err) && attempt < n.cfg.retries {
			n.log.Warn("mail delivery failed, retrying", "attempt", attempt, "err", err)
		}
		return transient(err), err
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("mail to %s: %w", strings.Join(to, ","), err)
	}
	return err
}

// transient reports whether a delivery error may go away: a 4xx reply or a network failure.
func transient(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code >= 400 && se.Code < 500
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

func (n *Notifier) deliver(ctx context.Context, to []string, msg []byte) error {
	addr := net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.cfg.Port))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.Timeout))
	defer cancel()
	dialer := &net.Dialer{}
	var conn net.Conn
	var err error
	if n.cfg.TLS == "implicit" {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: n.tls}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var c *smtp.Client
	if n.cfg.TLS == "starttls" {
		// Fails when the server does not offer STARTTLS: never fall back to plain text.
		if c, err = smtp.NewClientStartTLS(conn, n.tls); err != nil {
			conn.Close()
			return fmt.Errorf("starttls %s: %w", addr, err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout, c.SubmissionTimeout = time.Duration(n.cfg.Timeout), time.Duration(n.cfg.Timeout)
	defer c.Close()
	if err := c.Hello(hostname()); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if n.cfg.Username != "" {
		var a sasl.Client
		switch {
		case c.SupportsAuth("PLAIN"):
			a = sasl.NewPlainClient("", n.cfg.Username, n.cfg.Password)
		case c.SupportsAuth("LOGIN"):
			a = sasl.NewLoginClient(n.cfg.Username, n.cfg.Password)
		default:
			return errors.New("server offers neither AUTH PLAIN nor LOGIN")
		}
		if err := c.Auth(a); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(bareAddress(n.cfg.From), nil); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(bareAddress(rcpt), nil); err != nil {
			return fmt.Errorf("rcpt %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return c.Quit()
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

func bareAddress(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		return a.Address
	}
	return s
}

// message builds an RFC 5322 message: a UTF-8 text body in quoted-printable (with an HTML
// alternative when html is set) and an RFC 2047 subject.
func (n *Notifier) message(to []string, subject, body, html string, now time.Time) ([]byte, error) {
	for _, v := range append([]string{n.cfg.From, subject}, to...) {
		if strings.ContainsAny(v, "\r\n") {
			return nil, ErrHeader
		}
	}
	var addrs []string
	for _, t := range to {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("mail to %q: %w", t, err)
		}
		addrs = append(addrs, a.String())
	}
	from, _ := mail.ParseAddress(n.cfg.From)
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := "imagehook.local"
	if _, d, ok := strings.Cut(from.Address, "@"); ok {
		domain = d
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), domain)
	fmt.Fprintf(&b, "From: %s\r\n", from.String())
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(addrs, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.BEncoding.Encode("UTF-8", subject))
	b.WriteString("MIME-Version: 1.0\r\n")
	if html == "" {
		b.WriteString("Content-Type: text/plain; charset=UTF-8\r\n")
		b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
		if err := writeQP(&b, body); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%s\r\n\r\n", mw.Boundary())
	for _, part := range []struct{ ctype, content string }{{"text/plain", body}, {"text/html", html}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ctype + "; charset=UTF-8"},
			"Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		if err := writeQP(w, part.content); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeQP(w io.Writer, text string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n"))); err != nil {
		return err
	}
	return qp.Close()
}
