package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	r := New([]string{"s3cr3t", "p@ss/word", "s3cr3t-longer", ""})
	for _, tt := range []struct{ name, in, want string }{
		{"plain", "auth failed for s3cr3t", "auth failed for ***"},
		{"longest first", "token s3cr3t-longer", "token ***"},
		{"in a URL", "https://p%40ss%2Fword@git.example.com/a.git: 500", "https://***@git.example.com/a.git: 500"},
		{"query escaped", "token=p%40ss%2Fword", "token=***"},
		{"nothing", "all fine", "all fine"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	var none *Redactor
	if none.String("x") != "x" || New(nil).String("x") != "x" {
		t.Error("an empty redactor changed text")
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	r := New([]string{"tok3n"})
	log := slog.New(r.Handler(slog.NewJSONHandler(&buf, nil))).With("url", "https://tok3n@host")
	log.WithGroup("g").Info("push tok3n failed", "err", errors.New("auth tok3n"), "n", 3, slog.Group("in", "v", "tok3n"))
	if strings.Contains(buf.String(), "tok3n") {
		t.Errorf("secret in log: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"n":3`) {
		t.Errorf("non-string attribute changed: %s", buf.String())
	}
}

// TestShortSecretWholeToken (issue row 10): a secret shorter than ShortSecret is masked only as a
// whole token, never inside other words; longer secrets are masked wherever they appear.
func TestShortSecretWholeToken(t *testing.T) {
	r := New([]string{"TF", "p@ss", "long-s3cret"})
	for _, tt := range []struct{ name, in, want string }{
		{"inside words", "UTF-8 TFS GTFO TF_x xTF", "UTF-8 TFS GTFO TF_x xTF"},
		{"whole", "token TF refused", "token *** refused"},
		{"punctuation around", "key=TF&x=(TF), 'TF'.", "key=***&x=(***), '***'."},
		{"start and end", "TF", "***"},
		{"repeated", "TF TF", "*** ***"},
		{"one word of two", "TFTF", "TFTF"},
		{"URL-encoded", "https://bot:p%40ss@host", "https://***:***@host"}, // a URL's user information is masked whole (URLs)
		{"letters of other scripts", "日TF", "日TF"},
		{"long inside a word", "xlong-s3cretx", "x***x"},
		{"token as the user name, configured nowhere", "push https://ghp_abc123:x-oauth-basic@github.com/o/r: 403", "push https://***:***@github.com/o/r: 403"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestURLs(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"token as user", "https://ghp_T0KEN@git.example.com/a.git", "https://***@git.example.com/a.git"},
		{"user and password", `clone "https://bot:pa55@git.example.com/b.git": 401`, `clone "https://***:***@git.example.com/b.git": 401`},
		{"password with @", "https://bot:p@ss@host/x", "https://***:***@host/x"},
		{"bad port", "https://bot:pa55@host:port/x", "https://***:***@host:port/x"},
		{"postgres", "postgres://app:pw@db:5432/imagehook?sslmode=disable", "postgres://***:***@db:5432/imagehook?sslmode=disable"},
		{"ssh user stays", "ssh://git@host/a.git and git@host:a.git", "ssh://git@host/a.git and git@host:a.git"},
		{"ssh password", "ssh://git:pw@host/a.git", "ssh://git:***@host/a.git"},
		{"two URLs", "https://a@x/ https://b:c@y/", "https://***@x/ https://***:***@y/"},
		{"no userinfo", "https://host/a?to=bob@example.com", "https://host/a?to=bob@example.com"},
		{"mail address", "mail bob@example.com", "mail bob@example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := URLs(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
