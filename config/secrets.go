package config

import (
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/imagehook/imagehook/redact"
)

// Redacted returns a copy with every secret replaced, for check-config and logs.
func (c *Config) Redacted() *Config {
	// A deep copy first: masking writes through every slice and pointer it walks, and the running
	// config's notifiers, approvers or links must never become "***".
	cp := deepCopy(reflect.ValueOf(c).Elem()).Interface().(Config)
	eachSecret(reflect.ValueOf(&cp).Elem(), func(f reflect.Value) {
		if f.Kind() == reflect.Slice {
			red := make([]string, f.Len())
			for j := range red {
				red[j] = "***"
			}
			f.Set(reflect.ValueOf(red))
			return
		}
		if f.String() != "" {
			f.SetString("***")
		}
	})
	for i := range cp.Repos {
		cp.Repos[i].URL = redact.URL(cp.Repos[i].URL)
	}
	return &cp
}

// deepCopy returns a copy of v that shares no slice, map or pointer with it.
func deepCopy(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Struct:
		out.Set(v) // unexported fields keep their values; exported ones are copied below
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			return out
		}
		out.Set(reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
	case reflect.Map:
		if v.IsNil() {
			return out
		}
		out.Set(reflect.MakeMapWithSize(v.Type(), v.Len()))
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
	case reflect.Pointer:
		if v.IsNil() {
			return out
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(deepCopy(v.Elem()))
		out.Set(p)
	default:
		out.Set(v)
	}
	return out
}

// urlWithCredentials parses an http(s) URL that carries a user name (tokens are often given as the
// user name) or a password, so that Secrets can teach the redactor its credential; nil otherwise.
// Which parts of a URL are masked in text is redact.URLs' one rule.
func urlWithCredentials(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil
	}
	return u
}

// Secrets lists every secret value the configuration holds — tagged fields, the password of an
// http(s) repository URL, or its user name when it has no password (a token given as the user
// name) — for the one redactor (package redact). A user name beside a password is not a secret.
func (c *Config) Secrets() []string {
	var out []string
	eachSecret(reflect.ValueOf(c).Elem(), func(f reflect.Value) {
		if f.Kind() == reflect.Slice {
			for j := 0; j < f.Len(); j++ {
				out = append(out, f.Index(j).String())
			}
			return
		}
		out = append(out, f.String())
	})
	for _, n := range c.Notifiers {
		out = append(out, urlTokens(n.URL)...)
	}
	for _, r := range c.Repos {
		if u := urlWithCredentials(r.URL); u != nil {
			if p, ok := u.User.Password(); ok {
				out = append(out, p)
			} else {
				out = append(out, u.User.Username())
			}
		}
	}
	var kept []string
	for _, s := range out {
		if !Blank(s) {
			kept = append(kept, s)
		}
	}
	return kept
}

// urlTokens returns the parts of a robot's URL that carry its credential, so that an endpoint or a
// proxy echoing only a request line ("POST /robot/send?access_token=…") or a path is masked as
// well as the whole URL: every query value (DingTalk's access_token, WeCom's key), and every path
// segment long enough to be a token, with a digit in it (Feishu's hook id, Slack's secret path).
func urlTokens(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 8 {
				out = append(out, v)
			}
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 8 && strings.ContainsAny(seg, "0123456789") {
			out = append(out, seg)
		}
	}
	return out
}

// node returns the value node at a path of mapping keys (string) and sequence indexes (int) in

// fieldPath is the place of a struct field's value below path: path and the field's YAML key, or
// path itself for a field inlined into its parent's mapping (`yaml:",inline"`: its keys are the
// parent's own, as config.Repo's name and url are).
func fieldPath(path []any, f reflect.StructField) []any {
	if inlined(f) {
		return path
	}
	key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return append(slices.Clip(path), key)
}

// inlined reports whether the field's YAML keys are inlined into its parent's mapping.
func inlined(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return slices.Contains(strings.Split(opts, ","), "inline")
}

// eachSecret calls fn for every field tagged secret:"true" (a string or a []string) in v, the one
// walk behind Secrets, Redacted and the short-secret warnings.
func eachSecret(v reflect.Value, fn func(reflect.Value)) {
	eachSecretAt(v, nil, func(_ []any, f reflect.Value) { fn(f) })
}

// eachSecretAt is eachSecret that also gives each field's place: YAML keys (string) and sequence
// indexes (int), as Config.node takes them.
func eachSecretAt(v reflect.Value, path []any, fn func([]any, reflect.Value)) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			at := fieldPath(path, f)
			switch {
			case !f.IsExported():
			case f.Tag.Get("secret") == "true":
				fn(at, v.Field(i))
			default:
				eachSecretAt(v.Field(i), at, fn)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // file contents ([]byte): no secret fields inside
		}
		for i := 0; i < v.Len(); i++ {
			eachSecretAt(v.Index(i), append(slices.Clip(path), i), fn)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			eachSecretAt(v.Elem(), path, fn)
		}
	}
}
