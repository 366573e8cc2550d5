package event

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxText is the most bytes of one text from a peer — an Argo CD or Fleet status message, a
// forge's or registry's error, an SMTP reply — that an event stores, and so what the journal, GET
// /events/{id}, the event page and mail show of it.
const MaxText = 4 << 10

// cutReserve is room for the mark Cut appends, so that a cut text is never longer than MaxText
// and cutting it again changes nothing.
const cutReserve = 40

// cutBackOff is how far Cut looks back for a separator: a token (say a secret, masked later by
// the redactor, which only knows whole values) is dropped whole rather than left half.
const cutBackOff = 128

// Cut returns s bounded to MaxText bytes, the one rule for storing a peer's text: a longer text
// keeps its beginning, ended at a rune boundary and, where one is near, after a separator, then
// "… (cut, N bytes)" with N the bytes left out. Line breaks and markup are kept (every page
// escapes, and mail and chat make it one line); only the size is bounded.
func Cut(s string) string {
	if len(s) <= MaxText {
		return s
	}
	keep := MaxText - cutReserve
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	if i := strings.LastIndexAny(s[max(0, keep-cutBackOff):keep], " \t\r\n\"'`<>()[]{},;:@/?&=|"); i >= 0 {
		keep = max(0, keep-cutBackOff) + i + 1
	}
	return s[:keep] + "… (cut, " + strconv.Itoa(len(s)-keep) + " bytes)"
}

// cut bounds the texts of a step that come from peers.
func (s Step) cut() Step {
	s.Detail, s.Error = Cut(s.Detail), Cut(s.Error)
	if len(s.Skipped) > 0 {
		s.Skipped = append([]string(nil), s.Skipped...)
		for i := range s.Skipped {
			s.Skipped[i] = Cut(s.Skipped[i])
		}
	}
	return s
}
