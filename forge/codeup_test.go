package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/internal/forgetest"
)

const codeupRepoID = 2813489

// TestCodeupContract runs the change request life on Codeup's documented contract: a fork's
// change request with imagehook's branch name is left alone and named; imagehook's is opened (its
// repository looked up by the URL's full path, reviewers as user ids), updated in place, read back
// with the head of its latest source version; labels are refused as unsupported while the change
// request stays open; auto-merge refuses a head imagehook did not push and merges its own, which
// then reads merged with mergedRevision; a closed one reads closed; a comment goes to the latest
// version. The token travels in x-yunxiao-token only, and is in no error or answer.
func TestCodeupContract(t *testing.T) {
	const token = "pt-0fh3yunxiao0fbG_35af0484"
	api := forgetest.NewCodeup(token, "60de7a6852743a5162b5f957", "platform/apps", codeupRepoID)
	api.Heads["imagehook/web"] = "c0ffee1"
	api.CRs[1] = &forgetest.CodeupCR{LocalID: 1, Source: "imagehook/web", Target: "main", SourceID: 99, Status: "UNDER_REVIEW", Patches: []string{"bad"}}
	api.Next = 2
	srv := httptest.NewServer(api)
	defer srv.Close()
	repoURL := "https://codeup.aliyun.com/60de7a6852743a5162b5f957/platform/apps.git"
	f, err := New(WriteBack{Provider: Infer(repoURL), API: srv.URL, Token: token}, repoURL, nil)
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

	pr, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "web 1.1", Body: "b", Reviewers: []string{"62c795c9cf0b468af8"}})
	keep(pr, err)
	if err != nil || pr.Number != 2 || pr.State != Open || pr.Head != "c0ffee1" || pr.Fork || len(pr.LookAlikes) != 1 || pr.LookAlikes[0] != "!1 from repository 99" ||
		!strings.HasSuffix(pr.URL, "/change/2") {
		t.Fatalf("open: %+v %v\n%v", pr, err, api.Calls)
	}
	if r := api.CRs[2].Reviewers; len(r) != 1 || r[0] != "62c795c9cf0b468af8" {
		t.Errorf("reviewers %v", r)
	}

	// The next push: a new source version, the same change request updated in place. Labels are
	// not Codeup's: said, and the change request is open all the same.
	api.Mu.Lock()
	api.CRs[2].Patches = append(api.CRs[2].Patches, "c0ffee2")
	api.Mu.Unlock()
	again, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "web 1.2", Body: "b2", Labels: []string{"imagehook"}})
	keep(again, err)
	if !errors.Is(err, ErrUnsupported) || again.Number != 2 || again.Head != "c0ffee2" || api.CRs[2].Title != "web 1.2" || api.Next != 3 {
		t.Fatalf("update in place: %+v %v", again, err)
	}
	if api.CRs[1].Title != "" {
		t.Errorf("the fork's change request was changed: %+v", api.CRs[1])
	}
	if fork, err := f.Get(ctx, 1); err != nil || !fork.Fork {
		t.Errorf("the fork's reads as ours: %+v %v", fork, err)
	}

	err = f.AutoMerge(ctx, 2, "c0ffee1")
	keep(nil, err)
	if !errors.Is(err, ErrForge) || api.CRs[2].Status != "UNDER_REVIEW" {
		t.Fatalf("auto-merge of an old head: %v, %s", err, api.CRs[2].Status)
	}
	if err := f.AutoMerge(ctx, 2, "c0ffee2"); err != nil {
		t.Fatal(err)
	}
	merged, err := f.Get(ctx, 2)
	keep(merged, err)
	if err != nil || merged.State != Merged || merged.MergeCommit != api.CRs[2].Merged || merged.Head != "c0ffee2" {
		t.Fatalf("merged: %+v %v", merged, err)
	}
	if err := f.CancelAutoMerge(ctx, 2); err != nil {
		t.Error(err)
	}

	api.Mu.Lock()
	api.CRs[3] = &forgetest.CodeupCR{LocalID: 3, Source: "imagehook/api", Target: "main", SourceID: codeupRepoID, Status: "CLOSED", Patches: []string{"a1"}}
	api.Next = 4
	api.Mu.Unlock()
	if c, err := f.Get(ctx, 3); err != nil || c.State != Closed {
		t.Errorf("closed: %+v %v", c, err)
	}
	if err := f.Comment(ctx, 2, "note"); err != nil || len(api.Comments) != 1 || api.Comments[0] != "src-2" {
		t.Errorf("comment: %v on %v", err, api.Comments)
	}

	// A configured numeric repository id is used as is.
	byID, _ := New(WriteBack{Provider: "codeup", API: srv.URL, Token: token, Codeup: CodeupRepo{RepositoryID: strconv.Itoa(codeupRepoID)}}, repoURL, nil)
	if got, err := byID.Get(ctx, 2); err != nil || got.State != Merged {
		t.Errorf("by id: %+v %v", got, err)
	}
	// A wrong token: Codeup's refusal, short, without the token.
	bad, _ := New(WriteBack{Provider: "codeup", API: srv.URL, Token: "pt-wrong-token-value"}, repoURL, nil)
	_, err = bad.Get(ctx, 2)
	keep(nil, err)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401: invalid token") {
		t.Errorf("wrong token: %v", err)
	}
	srv.Close()
	_, err = f.Get(ctx, 2)
	keep(nil, err)
	for _, o := range outputs {
		if strings.Contains(o, token) || strings.Contains(o, "pt-wrong-token-value") {
			t.Errorf("a token in an output: %s", o)
		}
	}
	for _, want := range []string{"GET repository", "GET changeRequests", "POST repository/changeRequests", "PUT repository/changeRequests/N",
		"POST repository/changeRequests/N/merge", "POST repository/changeRequests/N/comments"} {
		if indexOf(api.Calls, want) < 0 {
			t.Errorf("never called %s: %v", want, api.Calls)
		}
	}
}
