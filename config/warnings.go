package config

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/imagehook/imagehook/redact"
)

// Warnings are what the configuration allows but a person should hear about: check-config prints
// them and serve logs them. Each names the key and, where the file has it, the line.
func (c *Config) Warnings() []string { return append([]string(nil), c.warnings...) }

// warn collects the warnings of a loaded configuration: secrets shorter than redact.ShortSecret,
// which the redactor masks only where they stand as a whole word (masked inside every word that
// holds them, logs would become unreadable).
func (c *Config) warn() {
	c.warnings = nil
	short := func(path []any, v string) {
		if n := utf8.RuneCountInString(v); n < redact.ShortSecret && !Blank(v) {
			c.warnings = append(c.warnings, fmt.Sprintf("%s%s: a secret of %d characters is masked in logs, events and mail only where it stands as a whole word; use one of at least %d",
				c.name(path), lineOf(c.node(path...)), n, redact.ShortSecret))
		}
	}
	eachSecretAt(reflect.ValueOf(c).Elem(), nil, func(path []any, f reflect.Value) {
		if f.Kind() == reflect.Slice {
			for j := 0; j < f.Len(); j++ {
				short(append(path, j), f.Index(j).String())
			}
			return
		}
		short(path, f.String())
	})
	for i, r := range c.Repos {
		if u := urlWithCredentials(r.URL); u != nil {
			secret, ok := u.User.Password()
			if !ok {
				secret = u.User.Username()
			}
			short([]any{"repos", i, "url"}, secret)
		}
	}
	warnForges(c)
}

// name spells a place in the configuration as validation messages do: keys joined by dots, a
// list entry by its id, name or host (hooks[website].token), else by its index.
func (c *Config) name(path []any) string {
	var b strings.Builder
	v := reflect.ValueOf(c).Elem()
	for _, p := range path {
		for v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
			v = fieldByKey(v, k)
		case int:
			label := fmt.Sprint(k)
			if v.Kind() == reflect.Slice && k < v.Len() {
				v = v.Index(k)
				for _, f := range []string{"ID", "Name", "Host"} {
					if v.Kind() == reflect.Struct {
						if fv := v.FieldByName(f); fv.IsValid() && fv.Kind() == reflect.String && fv.String() != "" {
							label = fv.String()
							break
						}
					}
				}
			} else {
				v = reflect.Value{}
			}
			fmt.Fprintf(&b, "[%s]", label)
		}
	}
	return b.String()
}

// fieldByKey returns the field of struct v whose YAML key is key, also among the fields of an
// inlined struct (the zero Value if none).
func fieldByKey(v reflect.Value, key string) reflect.Value {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}
	}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if inlined(f) {
			if in := fieldByKey(v.Field(i), key); in.IsValid() {
				return in
			}
			continue
		}
		if k, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); k == key {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}
