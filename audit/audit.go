// Package audit owns imagehook's audit trail: the trailer block each commit carries for the events
// it carries out, written and read here only. gitops stays plain git; the updater writes blocks,
// and history and crash recovery read them back.
//
// A block is the final paragraph of a commit message. Only that paragraph is read, and only in
// commits whose committer is imagehook's configured identity, so that neither a value that reaches
// the message (every one is a single line) nor a colleague's commit can forge an entry.
package audit

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
)

// Trailer keys.
const (
	TrailerEvent  = "Imagehook-Event"
	TrailerHook   = "Imagehook-Hook"
	TrailerImage  = "Imagehook-Image"
	TrailerSource = "Imagehook-Source"
	TrailerPusher = "Imagehook-Pusher"
	TrailerChange = "Imagehook-Change"
	// TrailerPromotedFrom names the pipeline, the stage and the event a promotion came from:
	// "website/staging 01j…".
	TrailerPromotedFrom = "Imagehook-Promoted-From"
	// TrailerApprovedBy names one approver of a promotion (a line each).
	TrailerApprovedBy = "Imagehook-Approved-By"
)

// Entry is one event's record in the audit trail.
type Entry struct {
	Commit string    `json:"commit"`
	Time   time.Time `json:"time"`
	Author string    `json:"author"`
	Event  string    `json:"event"`
	Hook   string    `json:"hook"`
	Image  string    `json:"image"`
	Source string    `json:"source"`
	Pusher string    `json:"pusher,omitempty"`
	// PromotedFrom is "pipeline/stage event" for a promotion; history follows the chain with it.
	PromotedFrom string        `json:"promotedFrom,omitempty"`
	ApprovedBy   []string      `json:"approvedBy,omitempty"`
	Changes      []EntryChange `json:"changes"`
}

// EntryChange is one image value a commit changed for an event.
type EntryChange struct {
	Workload  string `json:"workload"`
	Container string `json:"container"`
	Old       string `json:"old"`
	New       string `json:"new"`
}

// WriteBlock appends the trailer lines of one event to b: its id, hook, image, source, pusher and
// the values it changed. Every value is one line (event.OneLine).
func WriteBlock(b *strings.Builder, ev *event.Event, changes []event.Change) {
	line := func(key, val string) { fmt.Fprintf(b, "%s: %s\n", key, event.OneLine(val)) }
	line(TrailerEvent, ev.ID)
	line(TrailerHook, ev.Hook)
	line(TrailerImage, ev.Push.Ref())
	line(TrailerSource, ev.Push.Source)
	if ev.Push.Pusher != "" {
		line(TrailerPusher, ev.Push.Pusher)
	}
	if p := ev.PromotedFrom; p != nil {
		line(TrailerPromotedFrom, p.Pipeline+"/"+p.Stage+" "+p.Event)
		for _, a := range p.ApprovedBy {
			line(TrailerApprovedBy, a)
		}
	}
	for _, c := range changes {
		if c.Changed() {
			line(TrailerChange, fmt.Sprintf("%s %s %s -> %s", field(c.Workload), field(c.Container), field(c.Old), field(c.New)))
		}
	}
}

// field writes one value of a change trailer: as it is, or Go-quoted when it holds a space (a name
// with a line break is one line with a space by then), is empty, or starts with a quote — so that
// the four values read back as they were written, whatever a manifest named its workload.
func field(v string) string {
	v = event.OneLine(v)
	if v == "" || strings.ContainsRune(v, ' ') || strings.HasPrefix(v, `"`) {
		return strconv.Quote(v)
	}
	return v
}

// fields splits a change trailer's value into its values: bare words, or Go-quoted strings (which
// field writes); quoted reports which were quoted, so that only a bare "->" is the arrow.
func fields(s string) (vals []string, quoted []bool) {
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return vals, quoted
		}
		if s[0] == '"' {
			if q, err := strconv.QuotedPrefix(s); err == nil {
				if v, err := strconv.Unquote(q); err == nil {
					// A message imagehook did not write may quote a line break.
					vals, quoted = append(vals, event.OneLine(v)), append(quoted, true)
					s = s[len(q):]
					continue
				}
			}
		}
		word, rest, _ := strings.Cut(s, " ")
		vals, quoted = append(vals, word), append(quoted, false)
		s = rest
	}
}

// finalBlock returns the lines of a message's last paragraph.
func finalBlock(msg string) []string {
	msg = strings.TrimRight(strings.ReplaceAll(msg, "\r\n", "\n"), "\n")
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		msg = msg[i+2:]
	}
	return strings.Split(msg, "\n")
}

// Parse reads the events of one commit, in order, from the final trailer block of its message:
// each Imagehook-Event line starts an entry and the following trailers belong to it.
func Parse(c gitops.LogCommit) []Entry {
	var out []Entry
	for _, line := range finalBlock(c.Message) {
		key, val, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(key, "Imagehook-") {
			continue
		}
		if key == TrailerEvent {
			out = append(out, Entry{Commit: c.Hash, Time: c.When, Author: c.Author.Name, Event: val})
			continue
		}
		if len(out) == 0 {
			continue
		}
		e := &out[len(out)-1]
		switch key {
		case TrailerHook:
			e.Hook = val
		case TrailerImage:
			e.Image = val
		case TrailerSource:
			e.Source = val
		case TrailerPusher:
			e.Pusher = val
		case TrailerPromotedFrom:
			e.PromotedFrom = val
		case TrailerApprovedBy:
			e.ApprovedBy = append(e.ApprovedBy, val)
		case TrailerChange:
			f, quoted := fields(val)
			if len(f) == 5 && f[3] == "->" && !quoted[3] {
				e.Changes = append(e.Changes, EntryChange{Workload: f[0], Container: f[1], Old: f[2], New: f[4]})
			}
		}
	}
	return out
}

// Reader reads the audit trail of commits by one identity.
type Reader struct {
	// Committer is imagehook's identity in the repository; a zero value reads every commit (for a
	// repository inspected without its config).
	Committer gitops.Signature
}

// ours reports whether c was committed by imagehook.
func (r Reader) ours(c gitops.LogCommit) bool {
	if r.Committer == (gitops.Signature{}) {
		return true
	}
	return c.Committer.Name == r.Committer.Name && strings.EqualFold(c.Committer.Email, r.Committer.Email)
}

// Walker walks commits newest first (gitops.Repo.Log, gitops.OpenLog).
type Walker func(fn gitops.LogFunc) error

// History reads up to n entries (all when n <= 0), newest first; workload filters to one kind/name.
func (r Reader) History(walk Walker, n int, workload string) ([]Entry, error) {
	var out []Entry
	err := walk(func(c gitops.LogCommit) bool {
		if !r.ours(c) {
			return true
		}
		for _, e := range Parse(c) {
			if workload != "" && !touches(e, workload) {
				continue
			}
			out = append(out, e)
			if n > 0 && len(out) >= n {
				return false
			}
		}
		return true
	})
	return out, err
}

func touches(e Entry, workload string) bool {
	for _, c := range e.Changes {
		if strings.EqualFold(c.Workload, workload) {
			return true
		}
	}
	return false
}

// FindEvents returns, for the given event ids, the commit that carries each one found. After a
// crash between a push and the journal update, this tells which events already landed.
func (r Reader) FindEvents(walk Walker, ids []string) (map[string]string, error) {
	found := map[string]string{}
	if len(ids) == 0 {
		return found, nil
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	err := walk(func(c gitops.LogCommit) bool {
		if !r.ours(c) {
			return true
		}
		for _, e := range Parse(c) {
			if want[e.Event] {
				found[e.Event] = c.Hash
			}
		}
		return len(found) < len(want)
	})
	return found, err
}

// Open reads the audit trail of the repository at path (bare or with a worktree), from HEAD.
func (r Reader) Open(path string, n int, workload string) ([]Entry, error) {
	return r.History(func(fn gitops.LogFunc) error { return gitops.OpenLog(path, 0, fn) }, n, workload)
}
