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
