package config

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MailFromEnv reads the old tool's MAIL_* variables (its documentation had users base64-encode
// them; plain values are accepted too). It returns nil when MAIL_SMTP_SERVER is not set.
func MailFromEnv(lookup func(string) (string, bool)) (*Mail, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return decodeMaybeBase64(strings.TrimSpace(v))
	}
	host := get("MAIL_SMTP_SERVER")
	if host == "" {
		return nil, nil
	}
	m := &Mail{Host: host, From: get("MAIL_FROM"), Password: get("MAIL_PASSWORD"), CAPEM: get("MAIL_CACERT")}
	m.Username = m.From
	if p := get("MAIL_SMTP_PORT"); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("MAIL_SMTP_PORT: %q is not a port", p)
		}
		m.Port = port
	}
	if strings.EqualFold(get("MAIL_TLS_CHECK"), "false") {
		m.InsecureSkipVerify = true
	}
	// The old tool only spoke implicit TLS (it ran curl smtps://HOST:PORT), on whatever port it was
	// given: 163 Mail's 994 and company SMTPS ports included. Keep that everywhere except on the two
	// ports that never carry it: 587 (submission, STARTTLS) and 25 (plain relay).
	switch m.Port {
	case 587:
		m.TLS = "starttls"
	case 25:
		m.TLS = "none"
	default:
		m.TLS = "implicit"
	}
	return m, nil
}

// decodeMaybeBase64 returns the decoded text when v is base64 of printable UTF-8, else v.
func decodeMaybeBase64(v string) string {
	if v == "" {
		return v
	}
	data, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !utf8.Valid(data) {
		return v
	}
	for _, r := range string(data) {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return v
		}
	}
	return strings.TrimRight(string(data), "\r\n")
}
