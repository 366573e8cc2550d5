package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/confyaml"
	"github.com/imagehook/imagehook/internal/smtptest"
)

const (
	user     = smtptest.User
	password = smtptest.Password
)

func sampleEvent() *event.Event {
	return &event.Event{ID: "06h1ram0x2q8jbk0aa8114aqcg", Hook: "website",
		Push:    event.Push{Image: "registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0", Source: "aliyun", Pusher: "ci<script>"},
		Targets: []event.Target{{Repo: "apps", Workload: "deployment/website", Namespace: "web", Container: "website"}},
		Mail:    &event.Mail{To: []string{"ops@example.com", "王工 <dev@example.com>"}},
		Steps: []event.Step{{Name: "git", Status: event.Succeeded, Commit: "0e0429bb0ad0ead97d3e34cdb352e103dbe71600",
			URL: "https://git.example.com/apps/commit/0e0429bb0ad0ead97d3e34cdb352e103dbe71600",
			Changes: []event.Change{{File: "apps/website/deployment.yaml", Workload: "deployment/website", Container: "website",
				Old: "registry.cn-hangzhou.aliyuncs.com/acme/website:1.0.0", New: "registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0"}}}},
		Status: event.Succeeded}
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	cfg.Host = "127.0.0.1"
	cfg.From = "imagehook <" + user + ">"
	cfg.retryBase = 10 * time.Millisecond
	cfg.Timeout = confyaml.Duration(5 * time.Second)
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDelivery(t *testing.T) {
	caPEM, cert := smtptest.TestCA(t)
	tests := []struct {
		name string
		srv  smtptest.Options
		tls  string
		lang string
		mech string
	}{
		{"implicit TLS, PLAIN, Chinese", smtptest.Options{ImplicitTLS: true}, "implicit", "zh", sasl.Plain},
		{"STARTTLS, PLAIN, English", smtptest.Options{StartTLS: true}, "starttls", "en", sasl.Plain},
		{"plain relay, LOGIN only", smtptest.Options{LoginOnly: true}, "none", "zh", sasl.Login},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.srv, cert)
			port := srv.Port
			n := newNotifier(t, Config{Port: port, TLS: tt.tls, Username: user, Password: password, Language: tt.lang, CAPEM: string(caPEM)})
			if err := n.Notify(context.Background(), sampleEvent()); err != nil {
				t.Fatal(err)
			}
			messages, rcpts := srv.Messages()
			if authed := srv.Authed(); len(messages) != 1 || len(authed) != 1 || authed[0] != tt.mech {
				t.Fatalf("messages %d, auth %v", len(messages), authed)
			}
			if got := strings.Join(rcpts[0], ","); got != "ops@example.com,dev@example.com" {
				t.Errorf("recipients = %s", got)
			}
			msg, err := mail.ReadMessage(strings.NewReader(string(messages[0])))
			if err != nil {
				t.Fatal(err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"zh": "Webhooks通知: web-deployment/website-website 更新结果", "en": "imagehook: web/deployment/website website updated"}[tt.lang]
			if subject != want {
				t.Errorf("subject = %q, want %q", subject, want)
			}
			if _, err := msg.Header.Date(); err != nil {
				t.Errorf("Date: %v", err)
			}
			for _, h := range []string{"Message-ID", "MIME-Version", "From", "To"} {
				if msg.Header.Get(h) == "" {
					t.Errorf("missing header %s", h)
				}
			}
			text, html := readParts(t, msg)
			body := []byte(text)
			if strings.Contains(html, "<script>") || !strings.Contains(html, "ci&lt;script&gt;") {
				t.Errorf("payload text not escaped in the html part")
			}
			if !strings.Contains(html, "<code>registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0</code>") || !strings.Contains(html, `href="https://git.example.com/apps/commit/`) {
				t.Errorf("html part:\n%s", html)
			}
			for _, s := range []string{"website:1.0.0", "website:1.1.0", "0e0429bb0ad0", "https://git.example.com/apps/commit/0e0429bb", "06h1ram0x2q8jbk0aa8114aqcg"} {
				if !strings.Contains(string(body), s) {
					t.Errorf("body lacks %q:\n%s", s, body)
				}
			}
			if strings.Contains(string(messages[0]), password) {
				t.Error("the message contains the SMTP password")
			}
		})
	}
}

// readParts returns the decoded text/plain and text/html parts of a multipart/alternative message.
func readParts(t *testing.T, msg *mail.Message) (text, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return text, html
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
			t.Errorf("part encoding %q", p.Header.Get("Content-Transfer-Encoding"))
		}
		data, _ := io.ReadAll(quotedprintable.NewReader(p))
		switch p.Header.Get("Content-Type") {
		case "text/plain; charset=UTF-8":
			text = string(data)
		case "text/html; charset=UTF-8":
			html = string(data)
		default:
			t.Errorf("unexpected part %q", p.Header.Get("Content-Type"))
		}
	}
}

func TestDeliveryFailures(t *testing.T) {
	caPEM, cert := smtptest.TestCA(t)
	send := func(n *Notifier) error { return n.Send(context.Background(), []string{"a@example.com"}, "s", "b") }
	t.Run("wrong password", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{ImplicitTLS: true}, cert)
		err := send(newNotifier(t, Config{Port: srv.Port, TLS: "implicit", Username: user, Password: "wrong-pw-xyz", CAPEM: string(caPEM)}))
		if err == nil || strings.Contains(err.Error(), "wrong-pw-xyz") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("starttls required but not offered", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{}, cert)
		err := send(newNotifier(t, Config{Port: srv.Port, TLS: "starttls", Username: user, Password: password, CAPEM: string(caPEM)}))
		if msgs, _ := srv.Messages(); err == nil || !strings.Contains(err.Error(), "STARTTLS") || len(msgs) != 0 {
			t.Errorf("err = %v, messages %d", err, len(msgs))
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{ImplicitTLS: true}, cert)
		var ce *tls.CertificateVerificationError
		if err := send(newNotifier(t, Config{Port: srv.Port, TLS: "implicit"})); !errors.As(err, &ce) {
			t.Errorf("err = %v, want a certificate error", err)
		}
	})
	t.Run("451 then accepted", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{}, cert)
		srv.FailData(451)
		if err := send(newNotifier(t, Config{Port: srv.Port, TLS: "none"})); err != nil {
			t.Fatal(err)
		}
		if msgs, _ := srv.Messages(); len(msgs) != 1 {
			t.Errorf("messages = %d", len(msgs))
		}
	})
	t.Run("554 is not retried", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{}, cert)
		srv.FailData(554, 554)
		err := send(newNotifier(t, Config{Port: srv.Port, TLS: "none"}))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 554 || srv.PendingFailures() != 1 {
			t.Errorf("err = %v, unused failures %d", err, srv.PendingFailures())
		}
	})
	t.Run("header injection refused", func(t *testing.T) {
		n := newNotifier(t, Config{Port: 1, TLS: "none"})
		if err := n.Send(context.Background(), []string{"a@example.com\r\nBcc: x@evil.example"}, "s", "b"); !errors.Is(err, ErrHeader) {
			t.Errorf("err = %v", err)
		}
		if err := n.Send(context.Background(), []string{"a@example.com"}, "s\nBcc: x", "b"); !errors.Is(err, ErrHeader) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestFailureReportAndFilter(t *testing.T) {
	_, cert := smtptest.TestCA(t)
	srv := smtptest.Start(t, smtptest.Options{}, cert)
	n := newNotifier(t, Config{Port: srv.Port, TLS: "none", Language: "en"})
	ev := sampleEvent()
	ev.Steps[0] = event.Step{Name: "git", Status: event.Failed, Error: "push main: push rejected"}
	ev.Status, ev.Error = event.Failed, "push main: push rejected"
	ev.Mail.On = []string{"failure"}
	if err := n.Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	ok := sampleEvent()
	ok.Mail.On = []string{"failure"}
	if err := n.Notify(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	msgs, _ := srv.Messages()
	if len(msgs) != 1 || !strings.Contains(string(msgs[0]), "failed") || !strings.Contains(string(msgs[0]), "push rejected") {
		t.Errorf("want exactly the failure report, got %d messages", len(msgs))
	}
}

func TestCustomTemplates(t *testing.T) {
	_, cert := smtptest.TestCA(t)
	srv := smtptest.Start(t, smtptest.Options{}, cert)
	n := newNotifier(t, Config{Port: srv.Port, TLS: "none", SubjectTemplate: "[deploy] {{.Workload}} {{if .Failed}}KO{{else}}OK{{end}}",
		BodyTemplate: "{{.Event.ID}} {{range .Changes}}{{.New}}{{end}}"})
	if err := n.Notify(context.Background(), sampleEvent()); err != nil {
		t.Fatal(err)
	}
	msgs, _ := srv.Messages()
	msg, err := mail.ReadMessage(strings.NewReader(string(msgs[0])))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if subject != "[deploy] deployment/website OK" || strings.TrimSpace(string(body)) != "06h1ram0x2q8jbk0aa8114aqcg registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0" {
		t.Errorf("subject %q body %q", subject, body)
	}
	if _, err := New(Config{From: "a@example.com", BodyTemplate: "{{.Nope"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a broken template was accepted")
	}
}

// TestDeadline: a server that accepts and never answers costs one report its deadline, no more,
// and the error says it timed out (trust issue, row 11).
func TestDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	n := newNotifier(t, Config{Port: ln.Addr().(*net.TCPAddr).Port, TLS: "none", Deadline: confyaml.Duration(300 * time.Millisecond)})
	err = n.Notify(context.Background(), sampleEvent())
	if !errors.Is(err, ErrTimedOut) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("err = %v, want timed out", err)
	}
}

// TestValuesCannotForgeLines: a pusher, a container or an error with line breaks stays on its own
// line in the plain-text body: no forged "Commit:" line (trust issue, row 12).
func TestValuesCannotForgeLines(t *testing.T) {
	n := newNotifier(t, Config{Port: 1, TLS: "none"})
	ev := sampleEvent()
	ev.Push.Pusher = "ci\nCommit:     https://evil.example/phish\n"
	ev.Steps[0].Changes[0].Container = "website\r\nCommit: https://evil.example/2"
	ev.Error = "boom\u2028Commit: https://evil.example/3"
	for _, lang := range []string{"en", "zh"} {
		_, text, html, err := n.render(ev, nil, lang, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{text, html} {
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "Commit:") && strings.Contains(l, "evil.example") {
					t.Errorf("%s: forged line %q", lang, l)
				}
			}
		}
	}
}

// TestOneMailForACommit: events carried by one commit are reported in one mail, which names them.
func TestOneMailForACommit(t *testing.T) {
	n := newNotifier(t, Config{Port: 1, TLS: "none"})
	other := sampleEvent()
	other.ID = "06h1ram0x2q8jbk0aa8114zzzz"
	_, text, _, err := n.render(sampleEvent(), []*event.Event{other}, "en", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Also in this commit: 06h1ram0x2q8jbk0aa8114zzzz") {
		t.Errorf("body does not name the other event:\n%s", text)
	}
}
