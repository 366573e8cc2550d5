// Package lang is the one rule for the languages imagehook writes to people — chat reports, mail,
// the status page, pull requests and the CLI: English and Chinese, each text's words looked up by
// language with one fallback, English. Which language a component writes by default is its
// configuration's (config sets it once); this package only looks words up.
package lang

import "strings"

// The languages imagehook writes.
const (
	English = "en"
	Chinese = "zh"
	// Fallback is the language of anything asked in a language imagehook does not write.
	Fallback = English
)

// Known reports whether imagehook writes language l.
func Known(l string) bool { return l == English || l == Chinese }

// Of is l when imagehook writes it, else Fallback.
func Of(l string) string {
	if Known(l) {
		return l
	}
	return Fallback
}

// Words are a text's words by language: each language maps the same keys.
type Words map[string]map[string]string

// In returns the words of language l, the fallback's when l is not written.
func (w Words) In(l string) map[string]string { return w[Of(l)] }

// Pick returns zh in Chinese and en in any other language: a sentence written once in each.
func Pick(l, en, zh string) string {
	if Of(l) == Chinese {
		return zh
	}
	return en
}

// Preferred is the language a browser's Accept-Language asks for first: Chinese for any Chinese
// tag, English for any other tag, the fallback when it names none.
func Preferred(acceptLanguage string) string {
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		if strings.HasPrefix(tag, Chinese) {
			return Chinese
		}
		if tag != "" && tag != "*" {
			return English
		}
	}
	return Fallback
}
