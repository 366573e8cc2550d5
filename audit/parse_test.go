package audit

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops"
)

// TestParse reads trailer blocks as imagehook writes them, and as others might forge, cut short
// or garble them: only the final paragraph counts, a trailer before any event line belongs to no
// one, and a change line that is not five fields around a bare arrow is no change.
func TestParse(t *testing.T) {
	ev := func(id string, more ...string) string {
		return strings.Join(append([]string{"Imagehook-Event: " + id}, more...), "\n")
	}
	for _, tt := range []struct {
		name string
		msg  string
		want []Entry
	}{
		{"no block", "imagehook: web to 2", nil},
		{"empty message", "", nil},
		{"one event", "subject\n\n" + ev("e1", "Imagehook-Hook: h", "Imagehook-Image: acme/web:2", "Imagehook-Source: harbor",
			"Imagehook-Pusher: ann", "Imagehook-Change: deployment/web app acme/web:1 -> acme/web:2"),
			[]Entry{{Event: "e1", Hook: "h", Image: "acme/web:2", Source: "harbor", Pusher: "ann",
				Changes: []EntryChange{{Workload: "deployment/web", Container: "app", Old: "acme/web:1", New: "acme/web:2"}}}}},
		{"two events in order", "s\n\n" + ev("e1", "Imagehook-Hook: a") + "\n" + ev("e2", "Imagehook-Hook: b"),
			[]Entry{{Event: "e1", Hook: "a"}, {Event: "e2", Hook: "b"}}},
		{"CRLF line ends", "s\r\n\r\nImagehook-Event: e1\r\nImagehook-Hook: h\r\n", []Entry{{Event: "e1", Hook: "h"}}},
		{"trailing blank lines", "s\n\n" + ev("e1") + "\n\n\n", []Entry{{Event: "e1"}}},
		{"forged block in the body, not final", "s\n\n" + ev("forged", "Imagehook-Hook: evil") + "\n\nSigned-off-by: someone",
			nil},
		{"forged block before the real one", "s\n\n" + ev("forged") + "\n\n" + ev("e1"), []Entry{{Event: "e1"}}},
		{"trailer before any event", "s\n\nImagehook-Hook: orphan\n" + ev("e1"), []Entry{{Event: "e1"}}},
		{"only an event line", "s\n\n" + ev("e1"), []Entry{{Event: "e1"}}},
		{"partial: missing separator", "s\n\n" + ev("e1", "Imagehook-Hook h", "Imagehook-Image:acme/web:2"), []Entry{{Event: "e1"}}},
		{"partial: change cut short", "s\n\n" + ev("e1", "Imagehook-Change: deployment/web app acme/web:1 ->"), []Entry{{Event: "e1"}}},
		{"partial: change without arrow", "s\n\n" + ev("e1", "Imagehook-Change: deployment/web app acme/web:1 to acme/web:2"), []Entry{{Event: "e1"}}},
		{"quoted arrow is no arrow", "s\n\n" + ev("e1", `Imagehook-Change: deployment/web app acme/web:1 "->" acme/web:2`), []Entry{{Event: "e1"}}},
		{"unknown imagehook key", "s\n\n" + ev("e1", "Imagehook-Cluster: prod"), []Entry{{Event: "e1"}}},
		{"other trailers between", "s\n\n" + ev("e1", "Signed-off-by: x <x@example.com>", "Imagehook-Hook: h"), []Entry{{Event: "e1", Hook: "h"}}},
		{"a later hook line wins", "s\n\n" + ev("e1", "Imagehook-Hook: a", "Imagehook-Hook: b"), []Entry{{Event: "e1", Hook: "b"}}},
		{"empty event id", "s\n\nImagehook-Event: \nImagehook-Hook: h", []Entry{{Event: "", Hook: "h"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			got := Parse(gitops.LogCommit{Hash: "c1", Message: tt.msg, When: when, Author: gitops.Signature{Name: "imagehook"}})
			for i := range tt.want {
				tt.want[i].Commit, tt.want[i].Time, tt.want[i].Author = "c1", when, "imagehook"
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.msg, got, tt.want)
			}
		})
	}
}

// TestForgedValuesStayInTheirLine: a payload's value with a line break cannot add a trailer of
// its own to the block imagehook writes.
func TestForgedValuesStayInTheirLine(t *testing.T) {
	var b strings.Builder
	WriteBlock(&b, &event.Event{ID: "e1", Hook: "h\nImagehook-Event: forged", Push: event.Push{Image: "acme/web:2",
		Pusher: "x\n\nImagehook-Event: forged2", Source: "custom\u2028Imagehook-Hook: evil"}}, nil)
	got := Parse(gitops.LogCommit{Message: "s\n\n" + b.String()})
	if len(got) != 1 || got[0].Event != "e1" || got[0].Hook != "h Imagehook-Event: forged" || got[0].Source != "custom Imagehook-Hook: evil" {
		t.Errorf("entries = %+v", got)
	}
}

// TestForeignCommitsAreNotRead: the reader reads only its committer's commits (a colleague's
// commit with a copied block names no event), and a zero committer reads every one.
func TestForeignCommitsAreNotRead(t *testing.T) {
	me := gitops.Signature{Name: "imagehook", Email: "bot@example.com"}
	commits := []gitops.LogCommit{
		{Hash: "c3", Committer: gitops.Signature{Name: "mallory", Email: "m@example.com"}, Message: "s\n\nImagehook-Event: e1"},
		{Hash: "c2", Committer: gitops.Signature{Name: "imagehook", Email: "BOT@example.com"}, Message: "s\n\nImagehook-Event: e1"},
		{Hash: "c1", Committer: gitops.Signature{Name: "imagehook", Email: "other@example.com"}, Message: "s\n\nImagehook-Event: e2"},
	}
	walk := func(fn gitops.LogFunc) error {
		for _, c := range commits {
			if !fn(c) {
				break
			}
		}
		return nil
	}
	for _, tt := range []struct {
		name   string
		reader Reader
		want   map[string]string
	}{
		{"own identity", Reader{Committer: me}, map[string]string{"e1": "c2"}},
		{"no identity reads all", Reader{}, map[string]string{"e1": "c2", "e2": "c1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			found, err := tt.reader.FindEvents(walk, []string{"e1", "e2"})
			if err != nil || !reflect.DeepEqual(found, tt.want) {
				t.Errorf("FindEvents = %v, %v; want %v", found, err, tt.want)
			}
		})
	}
}
