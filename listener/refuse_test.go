package listener

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/internal/testlog"
)

// TestRefuse: a hook's delivery and a forge's that fail authentication are answered by the one
// rule — the caller's status within the address's budget, 429 past it, the token or signature
// named as the caller checks, and one log line naming the caller and the fault.
func TestRefuse(t *testing.T) {
	var buf testlog.Buffer
	b := newFailureBudget(0.001, 2, slog.New(slog.NewTextHandler(&buf, nil)))
	hook := authCaller{what: "webhook", key: "hook", name: "web", code: http.StatusInternalServerError}
	forge := authCaller{what: "forge webhook", key: "repo", name: "apps", code: http.StatusUnauthorized, signedOnly: true}
	for _, tt := range []struct {
		name   string
		caller authCaller
		addr   string
		why    authFault
		code   int
		msg    string
	}{
		{"hook token", hook, "192.0.2.1", faultToken, http.StatusInternalServerError, "invalid or missing token"},
		{"hook signature", hook, "192.0.2.1", faultSignature, http.StatusInternalServerError, "invalid or missing signature"},
		{"hook past the budget", hook, "192.0.2.1", faultToken, http.StatusTooManyRequests, "too many failed authentications from this address"},
		{"forge without a secret", forge, "192.0.2.2", faultNoSecret, http.StatusUnauthorized, "invalid or missing signature"},
		{"forge exhausted", forge, "192.0.2.2", faultExhausted, http.StatusUnauthorized, "invalid or missing signature"},
		{"forge past the budget", forge, "192.0.2.2", faultSignature, http.StatusTooManyRequests, "too many failed authentications from this address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var se *statusError
			if err := b.refuse(tt.caller, tt.addr, tt.why); !errors.As(err, &se) || se.code != tt.code || se.msg != tt.msg {
				t.Errorf("refuse = %v, want %d %q", err, tt.code, tt.msg)
			}
		})
	}
	logged := buf.String()
	for _, want := range []string{`msg="webhook refused: bad or missing token" hook=web remote=192.0.2.1`,
		`msg="forge webhook refused: the repository has no writeBack.webhookSecret" repo=apps remote=192.0.2.2`} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %q:\n%s", want, logged)
		}
	}
	if n := strings.Count(logged, "refused"); n != 2 {
		t.Errorf("%d log lines, want one a minute per address:\n%s", n, logged)
	}
}
