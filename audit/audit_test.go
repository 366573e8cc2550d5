package audit

import (
	"strings"
	"testing"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
)

// TestChangeNamesReadBack (issue row 11): whatever a manifest named its workload or container — a
// line break, spaces, a quote, "->" — the change is read back with the one-line name it was
// written with, and plain names keep the trailer format of earlier releases.
func TestChangeNamesReadBack(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change event.Change
		line   string // the trailer as written, when it must stay that way
	}{
		{"plain", event.Change{Workload: "deployment/web", Container: "app", Old: "acme/web:1", New: "acme/web:2"},
			"Imagehook-Change: deployment/web app acme/web:1 -> acme/web:2"},
		{"line break in the name", event.Change{Workload: "deployment/web\nsite", Container: "app", Old: "acme/web:1", New: "acme/web:2"}, ""},
		{"spaces, quotes and an arrow", event.Change{Workload: `deployment/"a -> b"`, Container: "c d -> e", Old: "", New: "acme/web:2"}, ""},
		{"leading quote", event.Change{Workload: `"web`, Container: `\`, Old: "acme/web:1", New: "acme/web:2"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			WriteBlock(&b, &event.Event{ID: "e1", Hook: "h", Push: event.Push{Image: "acme/web:2", Source: "custom"}}, []event.Change{tt.change})
			if tt.line != "" && !strings.Contains(b.String(), tt.line+"\n") {
				t.Errorf("block:\n%s\nwant the line %q", b.String(), tt.line)
			}
			entries := Parse(gitops.LogCommit{Hash: "c1", Message: "subject\n\n" + b.String()})
			want := EntryChange{Workload: event.OneLine(tt.change.Workload), Container: event.OneLine(tt.change.Container), Old: tt.change.Old, New: tt.change.New}
			if len(entries) != 1 || len(entries[0].Changes) != 1 || entries[0].Changes[0] != want {
				t.Fatalf("read back %+v from\n%s\nwant %+v", entries, b.String(), want)
			}
		})
	}
}

// A commit imagehook did not write may quote a line break: it is read as one line.
func TestQuotedLineBreakIsOneLine(t *testing.T) {
	entries := Parse(gitops.LogCommit{Message: "x\n\nImagehook-Event: e\nImagehook-Change: \"deployment/a\\nFAKE: line\" app a:1 -> a:2"})
	if len(entries) != 1 || len(entries[0].Changes) != 1 || entries[0].Changes[0].Workload != "deployment/a FAKE: line" {
		t.Errorf("entries = %+v", entries)
	}
}
