package journal

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDecisions(t *testing.T) { each(t, testDecisions) }

func testDecisions(t *testing.T, j Journal) {
	ctx := context.Background()
	d := j.Promotions()
	at := time.UnixMilli(1_780_000_000_000).UTC()
	digest := "sha256:aaaa"
	// Real values: names as config allows them, a comment with a quote, a newline and non-ASCII.
	steps := []Decision{
		{Pipeline: "website", Stage: "prod", Digest: digest, Approver: "alice", Approve: true, Comment: "LGTM \"ship\"\n上线", At: at, Link: "link-1"},
		{Pipeline: "website", Stage: "prod", Digest: digest, Approver: "bob", Approve: false, Comment: "", At: at.Add(time.Second)},
		{Pipeline: "website", Stage: "prod", Digest: "sha256:bbbb", Approver: "alice", Approve: true, At: at.Add(2 * time.Second)},
		{Pipeline: "website", Stage: "staging", Digest: digest, Approver: "alice", Approve: true, At: at.Add(3 * time.Second)},
		// bob changes his mind: the later decision replaces his rejection.
		{Pipeline: "website", Stage: "prod", Digest: digest, Approver: "bob", Approve: true, At: at.Add(4 * time.Second)},
	}
	for _, s := range steps {
		if err := d.Decide(ctx, s); err != nil {
			t.Fatalf("Decide %+v: %v", s, err)
		}
	}
	reuse := Decision{Pipeline: "website", Stage: "prod", Digest: digest, Approver: "alice", Approve: false, At: at.Add(5 * time.Second), Link: "link-1"}
	if err := d.Decide(ctx, reuse); !errors.Is(err, ErrLinkUsed) {
		t.Fatalf("a used link: %v, want ErrLinkUsed", err)
	}
	got, err := d.DecisionsFor(ctx, "website", "prod", digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Approver != "alice" || !got[0].Approve || got[0].Comment != steps[0].Comment ||
		!got[0].At.Equal(at) || got[1].Approver != "bob" || !got[1].Approve {
		t.Fatalf("decisions %+v, want alice's approval (kept, the link's reuse recorded nothing) and bob's later approval", got)
	}
	if other, _ := d.DecisionsFor(ctx, "website", "prod", "sha256:cccc"); len(other) != 0 {
		t.Errorf("another digest has %+v: approvals must not carry over", other)
	}
}

func TestHolds(t *testing.T) { each(t, testHolds) }

func testHolds(t *testing.T, j Journal) {
	ctx := context.Background()
	at := time.UnixMilli(1_780_000_000_000).UTC()
	for _, h := range []Hold{
		{Pipeline: "website", Stage: "staging", Commit: "abc123", By: "Bob <bob@example.com>", Comment: "set 1.0.0", At: at},
		{Pipeline: "website", Stage: "staging", Commit: "", By: "alice", Comment: "investigating", At: at.Add(time.Second)},
		{Pipeline: "website", Stage: "prod", Commit: "", By: "alice", At: at},
		{Pipeline: "website", Stage: "staging", Commit: "abc123", By: "alice", At: at.Add(2 * time.Second), Released: true},
	} {
		if err := j.Promotions().SetHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	got, err := j.Promotions().HoldsFor(ctx, "website", "staging")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Commit != "" || got[0].Released || got[0].Comment != "investigating" ||
		got[1].Commit != "abc123" || !got[1].Released || got[1].By != "alice" || !got[1].At.Equal(at.Add(2*time.Second)) {
		t.Fatalf("holds %+v, want the manual hold and the released commit hold", got)
	}
}

func TestNotices(t *testing.T) { each(t, testNotices) }

// testNotices: each notice is recorded once, whoever records it again (a restart, a replica, a
// second journal on the same database); another key, kind or stage is another notice.
func testNotices(t *testing.T, j Journal) {
	ctx := context.Background()
	at := time.UnixMilli(1_780_000_000_000).UTC()
	n := Notice{Pipeline: "website", Stage: "prod", Kind: "approval", Key: "ev1 sha256:aaaa", At: at}
	for _, tt := range []struct {
		name  string
		n     Notice
		first bool
	}{
		{"first", n, true},
		{"again", n, false},
		{"again later", Notice{Pipeline: n.Pipeline, Stage: n.Stage, Kind: n.Kind, Key: n.Key, At: at.Add(time.Hour)}, false},
		{"another key", Notice{Pipeline: n.Pipeline, Stage: n.Stage, Kind: n.Kind, Key: "ev2 sha256:bbbb", At: at}, true},
		{"another kind", Notice{Pipeline: n.Pipeline, Stage: n.Stage, Kind: "held", Key: n.Key, At: at}, true},
		{"another stage", Notice{Pipeline: n.Pipeline, Stage: "staging", Kind: n.Kind, Key: n.Key, At: at}, true},
	} {
		first, err := j.Promotions().Noticed(ctx, tt.n)
		if err != nil || first != tt.first {
			t.Errorf("%s: Noticed = %v, %v; want %v", tt.name, first, err, tt.first)
		}
	}
}
