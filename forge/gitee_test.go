package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/internal/forgetest"
)

// TestGiteeContract runs the pull request life on Gitee's documented contract: a fork's pull
// request with imagehook's branch name is left alone and named; imagehook's is opened (labels and
// reviewers as Gitee takes them), updated in place on the next push, read back with its head;
// auto-merge refuses a head imagehook did not push and merges its own, after which the pull
// request reads merged with the merge commit; a pull request closed on Gitee reads closed;
// comments land. The token is never in a write's URL, and in no error or answer imagehook keeps.
func TestGiteeContract(t *testing.T) {
	const token = "gitee-pat-0123456789abcdef"
	api := forgetest.NewGitee(token, "platform/apps")
	api.Heads["imagehook/web"] = "c0ffee1"
	// A fork's pull request with the same branch name.
	api.PRs[1] = &forgetest.GiteePR{Number: 1, Head: "imagehook/web", Base: "main", From: "eve/apps", State: "open", Sha: "bad", Mergeable: true}
	api.Next = 2
	srv := httptest.NewServer(api)
	defer srv.Close()
	f, err := New(WriteBack{Provider: Infer("https://gitee.com/platform/apps.git"), API: srv.URL + "/api/v5", Token: token}, "https://gitee.com/platform/apps.git", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var outputs []string
	keep := func(v any, err error) {
		outputs = append(outputs, fmt.Sprintf("%+v", v))
		if err != nil {
			outputs = append(outputs, err.Error())
		}
	}

	pr, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "web 1.1", Body: "b", Labels: []string{"imagehook", "deploy"}, Reviewers: []string{"alice", "bob"}})
	keep(pr, err)
	if err != nil || pr.Number != 2 || pr.State != Open || pr.Head != "c0ffee1" || pr.Fork || len(pr.LookAlikes) != 1 || pr.LookAlikes[0] != "!1 from eve/apps" {
		t.Fatalf("open: %+v %v", pr, err)
	}
	if p := api.PRs[2]; p.Labels != "imagehook,deploy" || p.Assignees != "alice,bob" {
		t.Errorf("created with labels %q, assignees %q", p.Labels, p.Assignees)
	}

	// The next push: the same pull request, updated in place.
	api.Mu.Lock()
	api.Heads["imagehook/web"], api.PRs[2].Sha = "c0ffee2", "c0ffee2"
	api.Mu.Unlock()
	again, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "web 1.2", Body: "b2", Labels: []string{"imagehook"}})
	keep(again, err)
	if err != nil || again.Number != 2 || again.Head != "c0ffee2" || api.PRs[2].Title != "web 1.2" || api.PRs[2].Labels != "imagehook" || api.Next != 3 {
		t.Fatalf("update in place: %+v %v (title %q, %d pull requests)", again, err, api.PRs[2].Title, api.Next-1)
	}
	if api.PRs[1].Title != "" {
		t.Errorf("the fork's pull request was changed: %+v", api.PRs[1])
	}
	got, err := f.Get(ctx, 2)
	keep(got, err)
	if err != nil || got.State != Open || got.Head != "c0ffee2" || got.URL != "https://gitee.com/platform/apps/pulls/2" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if fork, err := f.Get(ctx, 1); err != nil || !fork.Fork {
		t.Errorf("the fork's reads as ours: %+v %v", fork, err)
	}

	// Auto-merge only merges the head imagehook pushed.
	err = f.AutoMerge(ctx, 2, "c0ffee1")
	keep(nil, err)
	if !errors.Is(err, ErrForge) || api.PRs[2].State != "open" {
		t.Fatalf("auto-merge of an old head: %v, state %s", err, api.PRs[2].State)
	}
	if err := f.AutoMerge(ctx, 2, "c0ffee2"); err != nil {
		t.Fatal(err)
	}
	merged, err := f.Get(ctx, 2)
	keep(merged, err)
	if err != nil || merged.State != Merged || merged.MergeCommit != api.PRs[2].MergeSha {
		t.Fatalf("merged: %+v %v", merged, err)
	}
	// A fresh client (a restart) finds the merge commit on the base branch.
	f2, _ := New(WriteBack{Provider: "gitee", API: srv.URL + "/api/v5", Token: token}, "https://gitee.com/platform/apps.git", nil)
	if m, err := f2.Get(ctx, 2); err != nil || m.MergeCommit != api.PRs[2].MergeSha {
		t.Errorf("merge commit after a restart: %+v %v", m, err)
	}
	if err := f.CancelAutoMerge(ctx, 2); err != nil {
		t.Error(err)
	}

	// Squashed on Gitee by someone: found by the message Gitee writes for it.
	api.Mu.Lock()
	api.PRs[5] = &forgetest.GiteePR{Number: 5, Head: "imagehook/cache", Base: "main", From: "platform/apps", State: "merged", Sha: "e1"}
	api.Merges = append(api.Merges, "s0000000000000000000000000000000000000005 base - !5 imagehook: cache to 2.0")
	api.Mu.Unlock()
	if sq, err := f.Get(ctx, 5); err != nil || sq.MergeCommit != "s0000000000000000000000000000000000000005" {
		t.Errorf("squashed: %+v %v", sq, err)
	}

	// Closed on Gitee; not mergeable is said.
	api.Mu.Lock()
	api.PRs[3] = &forgetest.GiteePR{Number: 3, Head: "imagehook/api", Base: "main", From: "platform/apps", State: "closed", Sha: "a1"}
	api.PRs[4] = &forgetest.GiteePR{Number: 4, Head: "imagehook/db", Base: "main", From: "platform/apps", State: "open", Sha: "d1"}
	api.Next = 6
	api.Mu.Unlock()
	if c, err := f.Get(ctx, 3); err != nil || c.State != Closed {
		t.Errorf("closed: %+v %v", c, err)
	}
	err = f.AutoMerge(ctx, 4, "d1")
	keep(nil, err)
	if err == nil || !strings.Contains(err.Error(), "not mergeable") {
		t.Errorf("unmergeable: %v", err)
	}
	if err := f.Comment(ctx, 2, "note"); err != nil {
		t.Error(err)
	}

	// A forge quoting the request back, and a forge that is gone: neither error holds the token.
	api.Mu.Lock()
	api.Fail = "internal error"
	api.Mu.Unlock()
	_, err = f.Get(ctx, 2)
	keep(nil, err)
	err = f.Comment(ctx, 2, "x")
	keep(nil, err)
	srv.Close()
	_, err = f.Get(ctx, 2)
	keep(nil, err)
	if err == nil {
		t.Fatal("a closed server answered")
	}

	for _, o := range outputs {
		if strings.Contains(o, token) {
			t.Errorf("the token in an output: %s", o)
		}
	}
	for _, u := range api.URLs {
		if strings.Contains(u, token) && !strings.HasPrefix(u, "GET ") {
			t.Errorf("the token in a write's URL: %s", u)
		}
	}
	for _, want := range []string{"POST pulls", "PATCH pulls/N", "PUT pulls/N/merge", "POST pulls/N/comments", "GET commits"} {
		if indexOf(api.Calls, want) < 0 {
			t.Errorf("never called %s: %v", want, api.Calls)
		}
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
