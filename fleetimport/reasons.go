package fleetimport

import (
	"fmt"
	"strings"
)

// Reason is the typed reason of a refusal or a note: code reads the reason, people read the detail.
type Reason string

// Reasons.
const (
	// ReasonNotReadable: a file is not YAML, too large, or cannot be read.
	ReasonNotReadable Reason = "not-readable"
	// ReasonBadType: a value has a type Fleet's reader refuses, or is written with an alias.
	ReasonBadType Reason = "bad-type"
	// ReasonAmbiguous: a key is given twice, or two scans claim one marker name.
	ReasonAmbiguous Reason = "ambiguous"
	// ReasonInvalid: Fleet itself refuses the value (no tagName, a range its library cannot read).
	ReasonInvalid Reason = "invalid"
	// ReasonNotExact: imagehook cannot do exactly what Fleet does here.
	ReasonNotExact Reason = "not-exact"
	// ReasonIgnored: something Fleet ignores, and so does the import.
	ReasonIgnored Reason = "ignored"
	// ReasonSuspended: a scan with suspend: true, emitted commented out.
	ReasonSuspended Reason = "suspended"
	// ReasonNoMarker: a scan whose tagName no marker names, emitted commented out; or a marker
	// that names no scan.
	ReasonNoMarker Reason = "no-marker"
	// ReasonPlaceholder: a credential left for a person to fill in.
	ReasonPlaceholder Reason = "placeholder"
	// ReasonDefault: a value Fleet defaults, written out.
	ReasonDefault Reason = "default"
)

// Note is something the import did that a person should know: never silent, never an error.
type Note struct {
	Reason Reason
	File   string
	Line   int
	Detail string
}

func (n Note) String() string {
	if n.File == "" {
		return fmt.Sprintf("%s: %s", n.Reason, n.Detail)
	}
	if n.Line == 0 {
		return fmt.Sprintf("%s: %s: %s", n.File, n.Reason, n.Detail)
	}
	return fmt.Sprintf("%s:%d: %s: %s", n.File, n.Line, n.Reason, n.Detail)
}

// Refusal is what cannot be translated exactly, at a file and line.
type Refusal struct {
	Reason Reason
	File   string
	Line   int
	Detail string
}

func (r *Refusal) Error() string {
	switch {
	case r.File == "":
		return r.Detail
	case r.Line == 0:
		return r.File + ": " + r.Detail
	}
	return fmt.Sprintf("%s:%d: %s", r.File, r.Line, r.Detail)
}

func refuse(reason Reason, file string, line int, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, File: file, Line: line, Detail: fmt.Sprintf(format, args...)}
}

// Refused is every refusal of one import: nothing is printed while there is one.
type Refused []*Refusal

func (r Refused) Error() string {
	lines := make([]string, len(r))
	for i, x := range r {
		lines[i] = x.Error()
	}
	return fmt.Sprintf("%d thing(s) cannot be translated exactly; no config printed:\n  %s", len(r), strings.Join(lines, "\n  "))
}
