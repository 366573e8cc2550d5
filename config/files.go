package config

import (
	"fmt"
	"os"
	"strings"
	"unicode"
)

func readSecret(dst *string, file, field string) error {
	if file == "" {
		return nil
	}
	if *dst != "" {
		return fmt.Errorf("%s: give the secret inline or as a file, not both", field)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = strings.TrimRight(string(data), "\r\n")
	return nil
}

// Blank reports whether a secret is empty or only white space (any Unicode space): such a value
// must never count as a credential, neither in the config nor offered by a caller.
func Blank(s string) bool { return strings.TrimFunc(s, unicode.IsSpace) == "" }

// TrimSecret removes surrounding white space (any Unicode space) from a secret, the same way for
// configured and offered values.
func TrimSecret(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }

func (c *Config) readSecretFiles() error {
	for i := range c.Repos {
		r := &c.Repos[i]
		if err := readSecret(&r.Auth.Password, r.Auth.PasswordFile, fmt.Sprintf("repos[%s].auth.passwordFile", r.Name)); err != nil {
			return err
		}
		if err := readSecret(&r.WriteBack.Token, r.WriteBack.TokenFile, fmt.Sprintf("repos[%s].writeBack.tokenFile", r.Name)); err != nil {
			return err
		}
		for _, f := range []struct {
			dst        *[]byte
			path, name string
		}{{&r.Auth.SSHKey, r.Auth.SSHKeyFile, "auth.sshKeyFile"}, {&r.Auth.CABundle, r.Auth.CAFile, "auth.caFile"}, {&r.SigningKey, r.SigningKeyFile, "signingKeyFile"}} {
			if err := readFile(f.dst, f.path, fmt.Sprintf("repos[%s].%s", r.Name, f.name)); err != nil {
				return err
			}
		}
	}
	for i := range c.Hooks {
		h := &c.Hooks[i]
		if err := readSecret(&h.Token, h.TokenFile, fmt.Sprintf("hooks[%s].tokenFile", h.ID)); err != nil {
			return err
		}
		h.Token = TrimSecret(h.Token)
		for j := range h.Tokens {
			h.Tokens[j] = TrimSecret(h.Tokens[j])
		}
		if h.Signature != nil {
			h.Signature.Secret = TrimSecret(h.Signature.Secret)
		}
	}
	if err := c.Verify.readKey("verify"); err != nil {
		return err
	}
	for i := range c.Hooks {
		if err := c.Hooks[i].Verify.readKey(fmt.Sprintf("hooks[%s].verify", c.Hooks[i].ID)); err != nil {
			return err
		}
	}
	if err := readSecret(&c.Journal.DSN, c.Journal.DSNFile, "journal.dsnFile"); err != nil {
		return err
	}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		if err := readSecret(&n.URL, n.URLFile, fmt.Sprintf("notifiers[%s].urlFile", n.Name)); err != nil {
			return err
		}
		if err := readSecret(&n.Secret, n.SecretFile, fmt.Sprintf("notifiers[%s].secretFile", n.Name)); err != nil {
			return err
		}
	}
	for i := range c.Registries {
		r := &c.Registries[i]
		if err := readSecret(&r.Password, r.PasswordFile, fmt.Sprintf("registries[%s].passwordFile", r.Host)); err != nil {
			return err
		}
		if err := readFile(&r.CABundle, r.CAFile, fmt.Sprintf("registries[%s].caFile", r.Host)); err != nil {
			return err
		}
	}
	if c.Mail != nil {
		if err := readSecret(&c.Mail.Password, c.Mail.PasswordFile, "mail.passwordFile"); err != nil {
			return err
		}
		if c.Mail.CAFile != "" {
			var ca []byte
			if err := readFile(&ca, c.Mail.CAFile, "mail.caFile"); err != nil {
				return err
			}
			c.Mail.CAPEM = string(ca)
		}
	}
	return nil
}

// readFile reads a file the configuration names (a key, a CA) at load, so that a wrong path is a
// config error, not a failure at the first event.
func readFile(dst *[]byte, path, field string) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = data
	return nil
}
