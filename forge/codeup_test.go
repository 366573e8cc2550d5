package forge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// codeupAPI plays Alibaba Cloud DevOps' (云效) OpenAPI for Codeup change requests as its reference
// documents it (Codeup cannot be reached from here): the x-yunxiao-token header on every request,
// /oapi/v1/codeup/organizations/{organizationId}/… paths with the repository named by its id or
// its URL-encoded full path, the documented body fields and their types (others refused), and
// answers shaped like Codeup's (status UNDER_REVIEW/MERGED/CLOSED, mergedRevision, patch sets with
// their commits). Change requests are kept as state.
type codeupAPI struct {
	token string

	mu    sync.Mutex
	crs   map[int64]*codeupFake
	next  int64
	calls []string
	// comments holds each comment's patch set.
	comments []string
}

type codeupFake struct {
	localID            int64
	source, target     string
	sourceID           int64
	title, description string
	reviewers          []any
	status, merged     string
	patches            []string // commit of each source version, oldest first
	mergeable          bool
}

const codeupRepoID = 2813489

var codeupPath = regexp.MustCompile(`^/oapi/v1/codeup/organizations/60de7a6852743a5162b5f957/(?:changeRequests|repositories/([^/]+)(/changeRequests(?:/(\d+)(/merge|/comments|/diffs/patches)?)?)?)$`)

func (c *codeupAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	write := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	refuse := func(code int, msg string) {
		write(code, map[string]string{"errorCode": "Openapi.RequestError", "errorMessage": msg})
	}
	if r.Header.Get("x-yunxiao-token") != c.token {
		refuse(http.StatusUnauthorized, "invalid token")
		return
	}
	if r.URL.Query().Has("access_token") || r.Header.Get("Authorization") != "" {
		refuse(http.StatusBadRequest, "contract: the token travels in x-yunxiao-token only")
		return
	}
	m := codeupPath.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil {
		refuse(http.StatusNotFound, "not found: "+r.URL.EscapedPath())
		return
	}
	if m[1] != "" && m[1] != strconv.Itoa(codeupRepoID) && m[1] != "60de7a6852743a5162b5f957%2Fplatform%2Fapps" {
		refuse(http.StatusNotFound, "repository not found")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if r.Method != http.MethodGet && len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		refuse(http.StatusBadRequest, "contract: a JSON body")
		return
	}
	// fields refuses undocumented fields and checks the documented types.
	fields := func(types map[string]string) bool {
		for k, v := range body {
			want, ok := types[k]
			if !ok {
				refuse(http.StatusBadRequest, "contract: undocumented field "+k)
				return false
			}
			okType := false
			switch v.(type) {
			case string:
				okType = want == "string"
			case float64:
				okType = want == "integer" && v.(float64) == float64(int64(v.(float64)))
			case bool:
				okType = want == "boolean"
			case []any:
				okType = want == "array"
			}
			if !okType {
				refuse(http.StatusBadRequest, "contract: "+k+" is "+want)
				return false
			}
		}
		return true
	}
	number, _ := strconv.ParseInt(m[3], 10, 64)
	key := r.Method + " "
	switch {
	case m[1] == "":
		key += "changeRequests"
	case m[2] == "":
		key += "repository"
	case number == 0:
		key += "repository/changeRequests"
	default:
		key += "repository/changeRequests/N" + m[4]
	}
	c.calls = append(c.calls, key)
	cr := c.crs[number]
	if number != 0 && cr == nil {
		refuse(http.StatusNotFound, "change request not found")
		return
	}
	switch key {
	case "GET repository":
		write(http.StatusOK, map[string]any{"id": codeupRepoID, "name": "apps", "pathWithNamespace": "60de7a6852743a5162b5f957/platform/apps"})
	case "GET changeRequests":
		q := r.URL.Query()
		if q.Get("projectIds") == "" {
			refuse(http.StatusBadRequest, "contract: imagehook lists its repository's change requests only")
			return
		}
		var out []any
		for i := int64(1); i < c.next; i++ {
			if p := c.crs[i]; q.Get("state") != "opened" || (p.status != "MERGED" && p.status != "CLOSED") {
				item := c.json(p)
				item["state"] = item["status"] // ListChangeRequests names it state
				delete(item, "status")
				out = append(out, item)
			}
		}
		write(http.StatusOK, out)
	case "POST repository/changeRequests":
		if !fields(map[string]string{"title": "string", "description": "string", "sourceBranch": "string", "targetBranch": "string",
			"sourceProjectId": "integer", "targetProjectId": "integer", "reviewerUserIds": "array", "workItemIds": "array",
			"createFrom": "string", "triggerAIReviewRun": "boolean"}) {
			return
		}
		for _, k := range []string{"title", "sourceBranch", "targetBranch", "sourceProjectId", "targetProjectId"} {
			if body[k] == nil {
				refuse(http.StatusBadRequest, k+" is required")
				return
			}
		}
		if len([]rune(str(body["title"]))) > 256 || len([]rune(str(body["description"]))) > 10000 {
			refuse(http.StatusBadRequest, "title is at most 256 characters, description 10000")
			return
		}
		p := &codeupFake{localID: c.next, source: str(body["sourceBranch"]), target: str(body["targetBranch"]), sourceID: int64(body["sourceProjectId"].(float64)),
			title: str(body["title"]), description: str(body["description"]), status: "UNDER_REVIEW", patches: []string{"c0ffee1"}, mergeable: true}
		p.reviewers, _ = body["reviewerUserIds"].([]any)
		c.crs[p.localID] = p
		c.next++
		write(http.StatusOK, c.json(p))
	case "PUT repository/changeRequests/N":
		if !fields(map[string]string{"title": "string", "description": "string"}) {
			return
		}
		cr.title, cr.description = str(body["title"]), str(body["description"])
		write(http.StatusOK, map[string]any{"result": true})
	case "GET repository/changeRequests/N":
		write(http.StatusOK, c.json(cr))
	case "GET repository/changeRequests/N/diffs/patches":
		var out []any
		out = append(out, map[string]any{"patchSetBizId": "target-1", "commitId": "base", "relatedMergeItemType": "MERGE_TARGET", "versionNo": 1})
		for i, sha := range cr.patches {
			out = append(out, map[string]any{"patchSetBizId": fmt.Sprintf("src-%d", i+1), "commitId": sha, "relatedMergeItemType": "MERGE_SOURCE", "versionNo": i + 1})
		}
		write(http.StatusOK, out)
	case "POST repository/changeRequests/N/merge":
		if !fields(map[string]string{"mergeMessage": "string", "mergeType": "string", "removeSourceBranch": "boolean"}) {
			return
		}
		if mt := str(body["mergeType"]); mt != "ff-only" && mt != "no-fast-forward" && mt != "squash" && mt != "rebase" {
			refuse(http.StatusBadRequest, "mergeType is ff-only, no-fast-forward, squash or rebase")
			return
		}
		if !cr.mergeable {
			refuse(http.StatusBadRequest, "合并请求未满足合并条件")
			return
		}
		cr.status, cr.merged = "MERGED", fmt.Sprintf("m%039d", cr.localID)
		write(http.StatusOK, c.json(cr))
	case "POST repository/changeRequests/N/comments":
		if !fields(map[string]string{"comment_type": "string", "content": "string", "draft": "boolean", "resolved": "boolean", "patchset_biz_id": "string",
			"file_path": "string", "line_number": "integer", "from_patchset_biz_id": "string", "to_patchset_biz_id": "string", "parent_comment_biz_id": "string"}) {
			return
		}
		set := str(body["patchset_biz_id"])
		if str(body["comment_type"]) != "GLOBAL_COMMENT" || str(body["content"]) == "" || body["draft"] == nil || body["resolved"] == nil || !strings.HasPrefix(set, "src-") {
			refuse(http.StatusBadRequest, "comment_type, content, draft, resolved and patchset_biz_id are required")
			return
		}
		c.comments = append(c.comments, set)
		write(http.StatusOK, map[string]any{"comment_biz_id": "c1", "content": body["content"]})
	default:
		refuse(http.StatusNotFound, "not found")
	}
}

// json is a change request as GetChangeRequest answers it.
func (c *codeupAPI) json(p *codeupFake) map[string]any {
	return map[string]any{"localId": p.localID, "projectId": codeupRepoID, "sourceProjectId": p.sourceID, "targetProjectId": codeupRepoID,
		"sourceBranch": p.source, "targetBranch": p.target, "title": p.title, "description": p.description, "status": p.status,
		"mergedRevision": p.merged, "webUrl": fmt.Sprintf("https://codeup.aliyun.com/60de7a6852743a5162b5f957/platform/apps/change/%d", p.localID),
		"createFrom": "WEB", "sourceCommitId": ""}
}

// TestCodeupContract runs the change request life on Codeup's documented contract: a fork's
// change request with imagehook's branch name is left alone and named; imagehook's is opened (its
// repository looked up by the URL's full path, reviewers as user ids), updated in place, read back
// with the head of its latest source version; labels are refused as unsupported while the change
// request stays open; auto-merge refuses a head imagehook did not push and merges its own, which
// then reads merged with mergedRevision; a closed one reads closed; a comment goes to the latest
// version. The token travels in x-yunxiao-token only, and is in no error or answer.
func TestCodeupContract(t *testing.T) {
	const token = "pt-0fh3yunxiao0fbG_35af0484"
	api := &codeupAPI{token: token, crs: map[int64]*codeupFake{}, next: 2}
	api.crs[1] = &codeupFake{localID: 1, source: "imagehook/web", target: "main", sourceID: 99, status: "UNDER_REVIEW", patches: []string{"bad"}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	repoURL := "https://codeup.aliyun.com/60de7a6852743a5162b5f957/platform/apps.git"
	f, err := New(Config{Provider: Infer(repoURL), API: srv.URL, RepoURL: repoURL, Token: token})
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
		t.Fatalf("open: %+v %v\n%v", pr, err, api.calls)
	}
	if r := api.crs[2].reviewers; len(r) != 1 || r[0] != "62c795c9cf0b468af8" {
		t.Errorf("reviewers %v", r)
	}

	// The next push: a new source version, the same change request updated in place. Labels are
	// not Codeup's: said, and the change request is open all the same.
	api.mu.Lock()
	api.crs[2].patches = append(api.crs[2].patches, "c0ffee2")
	api.mu.Unlock()
	again, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "web 1.2", Body: "b2", Labels: []string{"imagehook"}})
	keep(again, err)
	if !errors.Is(err, ErrUnsupported) || again.Number != 2 || again.Head != "c0ffee2" || api.crs[2].title != "web 1.2" || api.next != 3 {
		t.Fatalf("update in place: %+v %v", again, err)
	}
	if api.crs[1].title != "" {
		t.Errorf("the fork's change request was changed: %+v", api.crs[1])
	}
	if fork, err := f.Get(ctx, 1); err != nil || !fork.Fork {
		t.Errorf("the fork's reads as ours: %+v %v", fork, err)
	}

	err = f.AutoMerge(ctx, 2, "c0ffee1")
	keep(nil, err)
	if !errors.Is(err, ErrForge) || api.crs[2].status != "UNDER_REVIEW" {
		t.Fatalf("auto-merge of an old head: %v, %s", err, api.crs[2].status)
	}
	if err := f.AutoMerge(ctx, 2, "c0ffee2"); err != nil {
		t.Fatal(err)
	}
	merged, err := f.Get(ctx, 2)
	keep(merged, err)
	if err != nil || merged.State != Merged || merged.MergeCommit != api.crs[2].merged || merged.Head != "c0ffee2" {
		t.Fatalf("merged: %+v %v", merged, err)
	}
	if err := f.CancelAutoMerge(ctx, 2); err != nil {
		t.Error(err)
	}

	api.mu.Lock()
	api.crs[3] = &codeupFake{localID: 3, source: "imagehook/api", target: "main", sourceID: codeupRepoID, status: "CLOSED", patches: []string{"a1"}}
	api.next = 4
	api.mu.Unlock()
	if c, err := f.Get(ctx, 3); err != nil || c.State != Closed {
		t.Errorf("closed: %+v %v", c, err)
	}
	if err := f.Comment(ctx, 2, "note"); err != nil || len(api.comments) != 1 || api.comments[0] != "src-2" {
		t.Errorf("comment: %v on %v", err, api.comments)
	}

	// A configured numeric repository id is used as is.
	byID, _ := New(Config{Provider: "codeup", API: srv.URL, RepoURL: repoURL, Token: token, Repository: strconv.Itoa(codeupRepoID)})
	if got, err := byID.Get(ctx, 2); err != nil || got.State != Merged {
		t.Errorf("by id: %+v %v", got, err)
	}
	// A wrong token: Codeup's refusal, short, without the token.
	bad, _ := New(Config{Provider: "codeup", API: srv.URL, RepoURL: repoURL, Token: "pt-wrong-token-value"})
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
		if indexOf(api.calls, want) < 0 {
			t.Errorf("never called %s: %v", want, api.calls)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }
