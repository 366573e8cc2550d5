package approval

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestSignCheck(t *testing.T) {
	s, err := NewSigner(testKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_780_000_000, 0)
	want := Link{Approver: "alice", Pipeline: "website", Stage: "prod", Digest: "sha256:" + strings.Repeat("a", 64),
		Action: Approve, Expires: now.Add(time.Hour)}
	tok, signed, err := s.Sign(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Check(tok, now)
	if err != nil || got != signed || got.ID == "" {
		t.Fatalf("Check = %+v, %v; want %+v", got, err, signed)
	}
	other, _ := NewSigner([]byte(strings.Repeat("k", 32)))
	alteredStage, _, _ := s.Sign(Link{ID: signed.ID, Approver: "alice", Pipeline: "website", Stage: "staging",
		Digest: want.Digest, Action: Approve, Expires: want.Expires})
	body, mac, _ := strings.Cut(tok, ".")
	_, otherMac, _ := strings.Cut(alteredStage, ".")
	tests := []struct {
		name   string
		signer *Signer
		token  string
		at     time.Time
		want   error
	}{
		{"expired", s, tok, want.Expires, ErrExpired},
		{"another key", other, tok, now, ErrForged},
		{"body of one link, mac of another", s, body + "." + otherMac, now, ErrForged},
		{"no mac", s, body, now, ErrMalformed},
		{"not base64", s, "!!!." + mac, now, ErrMalformed},
		{"huge", s, strings.Repeat("a", maxLink+1), now, ErrMalformed},
		{"empty", s, "", now, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.signer.Check(tt.token, tt.at); !errors.Is(err, tt.want) {
				t.Fatalf("Check: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("a 5-byte key was accepted")
	}
	s, _ := NewSigner(testKey)
	if _, _, err := s.Sign(Link{Action: "merge"}); err == nil {
		t.Error("an unknown action was signed")
	}
}

// FuzzCheck feeds arbitrary tokens: Check never panics, and whatever it accepts re-signs to itself
// (no two encodings of one link, so a link cannot be altered into another that verifies).
func FuzzCheck(f *testing.F) {
	s, _ := NewSigner(testKey)
	tok, _, _ := s.Sign(Link{Approver: "a", Pipeline: "p", Stage: "s", Digest: "d", Action: Reject, Expires: time.Unix(1<<40, 0)})
	f.Add(tok)
	f.Add("x.y")
	f.Fuzz(func(t *testing.T, token string) {
		l, err := s.Check(token, time.Unix(0, 0))
		if err != nil {
			return
		}
		again, _, err := s.Sign(l)
		if err != nil || again != token {
			t.Fatalf("accepted %q, which re-signs as %q (%v)", token, again, err)
		}
	})
}
