// Package approval makes and checks the signed one-time links that let an approver approve or reject
// a promotion from chat or mail. A link binds the approver, the pipeline, the stage, the digest, the
// action and an expiry under the server's key, so it cannot be altered, reused for another stage or
// digest, or used after it expires. That a link is used only once is the journal's to record: Check
// returns the link's id, which the caller marks used.
package approval

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Action is what a link does.
type Action string

// Actions a link can carry.
const (
	Approve Action = "approve"
	Reject  Action = "reject"
)

// Link is what a signed link carries.
type Link struct {
	ID       string // random, names the link in the journal (used once)
	Approver string
	Pipeline string
	Stage    string
	Digest   string
	Action   Action
	Expires  time.Time
}

// Errors Check returns; callers branch on them with errors.Is.
var (
	ErrMalformed = errors.New("not an approval link")
	ErrForged    = errors.New("approval link signature does not verify")
	ErrExpired   = errors.New("approval link expired")
)

// b64 is strict so that one link has one spelling.
var b64 = base64.RawURLEncoding.Strict()

// maxLink bounds what Check decodes: a link is a few hundred bytes.
const maxLink = 2048

// Signer signs and checks links with one key.
type Signer struct{ key []byte }

// NewSigner returns a signer; the key must be at least 32 bytes of secret.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("approval link key: %d bytes, want at least 32", len(key))
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// Sign returns the link's token (URL-safe, no padding). A zero ID is filled with a random one.
func (s *Signer) Sign(l Link) (string, Link, error) {
	if l.ID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", Link{}, fmt.Errorf("approval link id: %w", err)
		}
		l.ID = b64.EncodeToString(b[:])
	}
	if l.Action != Approve && l.Action != Reject {
		return "", Link{}, fmt.Errorf("approval link action %q: want approve or reject", l.Action)
	}
	body := encode(l)
	return b64.EncodeToString(body) + "." + b64.EncodeToString(s.mac(body)), l, nil
}

// Check verifies a token at now: its signature first, then its expiry. The returned Link is what was
// signed, never what the request says besides it.
func (s *Signer) Check(token string, now time.Time) (Link, error) {
	if len(token) > maxLink {
		return Link{}, ErrMalformed
	}
	b64body, b64mac, ok := strings.Cut(token, ".")
	if !ok {
		return Link{}, ErrMalformed
	}
	body, err1 := b64.DecodeString(b64body)
	mac, err2 := b64.DecodeString(b64mac)
	if err1 != nil || err2 != nil {
		return Link{}, ErrMalformed
	}
	if !hmac.Equal(mac, s.mac(body)) {
		return Link{}, ErrForged
	}
	l, err := decode(body)
	if err != nil {
		return Link{}, err
	}
	if !now.Before(l.Expires) {
		return l, ErrExpired
	}
	return l, nil
}

func (s *Signer) mac(body []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("imagehook approval link v1\x00")) // a key shared with another use cannot sign links
	m.Write(body)
	return m.Sum(nil)
}

// encode writes each field length-prefixed, so no field can run into the next.
func encode(l Link) []byte {
	var b []byte
	for _, f := range l.fields() {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return binary.AppendVarint(b, l.Expires.Unix())
}

func (l *Link) fields() []string {
	return []string{l.ID, l.Approver, l.Pipeline, l.Stage, l.Digest, string(l.Action)}
}

func decode(b []byte) (Link, error) {
	var f [6]string
	for i := range f {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return Link{}, ErrMalformed
		}
		f[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	exp, k := binary.Varint(b)
	if k <= 0 || k != len(b) {
		return Link{}, ErrMalformed
	}
	l := Link{ID: f[0], Approver: f[1], Pipeline: f[2], Stage: f[3], Digest: f[4], Action: Action(f[5]),
		Expires: time.Unix(exp, 0)}
	if l.Action != Approve && l.Action != Reject {
		return Link{}, ErrMalformed
	}
	return l, nil
}
