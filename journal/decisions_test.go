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

func TestPruneNotices(t *testing.T) { each(t, testPruneNotices) }

// testPruneNotices: Prune deletes the notices recorded before the retention's start (a stage that
// waited on one then cannot send it again), except the held notices of a stage still held through
// the API, which go at the first Prune after the release; newer notices stay.
func testPruneNotices(t *testing.T, j Journal) {
	ctx := context.Background()
	p := j.Promotions()
	now := time.Now().UTC().Truncate(time.Millisecond)
	cut := now.Add(-time.Hour)
	old, recent := now.Add(-2*time.Hour), now
	notices := map[string]Notice{
		"old approval":           {Pipeline: "website", Stage: "prod", Kind: NoticeApproval, Key: "ev1 sha256:aaaa", At: old},
		"recent approval":        {Pipeline: "website", Stage: "prod", Kind: NoticeApproval, Key: "ev2 sha256:bbbb", At: recent},
		"old hold, held by API":  {Pipeline: "website", Stage: "prod", Kind: NoticeHeld, Key: "api " + old.Format(time.RFC3339Nano), At: old},
		"old hold, released":     {Pipeline: "website", Stage: "staging", Kind: NoticeHeld, Key: "abc123", At: old},
		"old hold, other stage":  {Pipeline: "shop", Stage: "prod", Kind: NoticeHeld, Key: "def456", At: old},
		"recent hold, no holder": {Pipeline: "shop", Stage: "staging", Kind: NoticeHeld, Key: "0123abc", At: recent},
	}
	for name, n := range notices {
		if first, err := p.Noticed(ctx, n); err != nil || !first {
			t.Fatalf("%s: Noticed = %v, %v", name, first, err)
		}
	}
	for _, h := range []Hold{
		{Pipeline: "website", Stage: "prod", By: "alice", At: old},
		{Pipeline: "website", Stage: "staging", Commit: "abc123", By: "alice", At: old, Released: true},
		{Pipeline: "website", Stage: "staging", By: "alice", At: old, Released: true},
	} {
		if err := p.SetHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.Prune(ctx, cut); err != nil {
		t.Fatal(err)
	}
	// A notice still recorded is not the first again; a pruned one is recorded anew.
	kept := func(name string) bool {
		t.Helper()
		first, err := p.Noticed(ctx, notices[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return !first
	}
	for name, want := range map[string]bool{
		"old approval": false, "recent approval": true, "old hold, held by API": true,
		"old hold, released": false, "old hold, other stage": false, "recent hold, no holder": true,
	} {
		if got := kept(name); got != want {
			t.Errorf("%s: kept by Prune = %v, want %v", name, got, want)
		}
	}
	// Released, the API hold's notice goes with the next Prune.
	if err := p.SetHold(ctx, Hold{Pipeline: "website", Stage: "prod", By: "bob", At: now, Released: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Prune(ctx, cut); err != nil {
		t.Fatal(err)
	}
	if kept("old hold, held by API") {
		t.Error("the released API hold's notice outlived Prune")
	}
}
