package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"github.com/imagehook/imagehook/outbound"
)

// Blank reports whether a secret is empty or only white space (any Unicode space): such a value
// must never count as a credential, neither in the config nor offered by a caller.
func Blank(s string) bool { return strings.TrimFunc(s, unicode.IsSpace) == "" }

// TrimSecret removes surrounding white space (any Unicode space) from a secret, the same way for
// configured and offered values.
func TrimSecret(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }

// readFiles fills every field that a `secretfile:"Field"` tag names from the file its tagged
// field gives, in one walk over the schema (a new …File key is one tag): a string as a secret
// (inline or as a file, not both; trailing line breaks dropped), a []byte as the file's bytes (a
// key, a CA). A file that cannot be read is a config error naming its key, not a failure at the
// first event.
func readFiles(c *Config) error {
	return walkFiles(c, reflect.ValueOf(c).Elem(), nil)
}

func walkFiles(c *Config, v reflect.Value, path []any) error {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			return walkFiles(c, v.Elem(), path)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // file contents: nothing tagged inside
		}
		for i := 0; i < v.Len(); i++ {
			if err := walkFiles(c, v.Index(i), append(slices.Clip(path), i)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			at := fieldPath(path, f)
			if dst := f.Tag.Get("secretfile"); dst != "" {
				if err := readInto(v.FieldByName(dst), v.Field(i).String(), c.name(at)); err != nil {
					return err
				}
				if key == "caFile" {
					if err := checkCA(v.FieldByName(dst), c.name(at)); err != nil {
						return err
					}
				}
				continue
			}
			if err := walkFiles(c, v.Field(i), at); err != nil {
				return err
			}
		}
	}
	return nil
}

// readInto reads file into dst, a string secret or a []byte.
func readInto(dst reflect.Value, file, field string) error {
	if file == "" {
		return nil
	}
	if dst.Kind() == reflect.String && dst.String() != "" {
		return fmt.Errorf("%s: give the secret inline or as a file, not both", field)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if dst.Kind() == reflect.String {
		dst.SetString(strings.TrimRight(string(data), "\r\n"))
	} else {
		dst.SetBytes(data)
	}
	return nil
}

// checkCA refuses a CA file that holds no PEM certificate: the clients would quietly trust the
// system's roots alone, and the first TLS error would name a certificate, not the file.
func checkCA(v reflect.Value, field string) error {
	var data []byte
	switch v.Kind() {
	case reflect.String:
		data = []byte(v.String())
	case reflect.Slice:
		data = v.Bytes()
	}
	if len(data) == 0 {
		return nil
	}
	if _, err := outbound.CertPool(data); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// trimSecrets removes surrounding white space from the secrets callers offer back (hook tokens,
// signature secrets, approver tokens), so that both sides are compared trimmed.
func trimSecrets(c *Config) {
	for i := range c.Hooks {
		h := &c.Hooks[i]
		h.Token = TrimSecret(h.Token)
		for j := range h.Tokens {
			h.Tokens[j] = TrimSecret(h.Tokens[j])
		}
		if h.Signature != nil {
			h.Signature.Secret = TrimSecret(h.Signature.Secret)
		}
	}
	for i := range c.Approvers {
		c.Approvers[i].Token = TrimSecret(c.Approvers[i].Token)
	}
}
