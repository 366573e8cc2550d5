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

// giteeAPI plays Gitee's OpenAPI v5 as its documentation describes it (gitee.com cannot be reached
// from here): the pull request endpoints under /api/v5/repos/{owner}/{repo}, the access_token
// parameter on every request — in the JSON body of a write, in the query of a read — the
// documented fields of each request (refusing others, and refusing a token in a write's URL), and
// answers shaped like Gitee's. It keeps pull requests as state, so that opening, updating in
// place, merging and reading back are checked together.
type giteeAPI struct {
	t     *testing.T
	token string

	mu     sync.Mutex
	prs    map[int64]*giteeFake
	next   int64
	heads  map[string]string // branch → sha in platform/apps
	merges []string          // commits on main made by merges: "sha parent1 parent2"
	urls   []string          // every request line, to scan for the token
	calls  []string          // "METHOD path" of every accepted request
	fail   string            // when set, every answer is a 500 echoing the request (a forge that quotes it)
}

type giteeFake struct {
	number                 int64
	head, base, from, body string
	title, labels          string
	assignees              string
	state, sha, mergeSha   string
	mergeable              bool
}

func newGiteeAPI(t *testing.T, token string) *giteeAPI {
	return &giteeAPI{t: t, token: token, prs: map[int64]*giteeFake{}, next: 1, heads: map[string]string{}}
}

var giteePath = regexp.MustCompile(`^/api/v5/repos/platform/apps(/pulls(?:/(\d+)(/merge|/comments)?)?|/commits)$`)

func (g *giteeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.urls = append(g.urls, r.Method+" "+r.URL.String())
	refuse := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
	raw, _ := io.ReadAll(r.Body)
	if g.fail != "" {
		refuse(http.StatusInternalServerError, g.fail+": "+r.URL.String()+" "+string(raw))
		return
	}
	var body map[string]any
	if r.Method == http.MethodGet {
		if len(raw) > 0 {
			refuse(http.StatusBadRequest, "a GET has no body")
			return
		}
		if r.URL.Query().Get("access_token") != g.token {
			refuse(http.StatusUnauthorized, "401 Unauthorized: Access token does not exist")
			return
		}
	} else {
		if r.URL.Query().Has("access_token") {
			refuse(http.StatusBadRequest, "contract: the token belongs in the body of a write, not its URL")
			return
		}
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(raw, &body) != nil {
			refuse(http.StatusBadRequest, "contract: a JSON body")
			return
		}
		if body["access_token"] != g.token {
			refuse(http.StatusUnauthorized, "401 Unauthorized: Access token does not exist")
			return
		}
		delete(body, "access_token")
	}
	m := giteePath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		refuse(http.StatusNotFound, "404 Not Found")
		return
	}
	// only refuses fields Gitee's endpoint does not document, and checks the types it documents.
	only := func(allowed ...string) bool {
		for k, v := range body {
			i := indexOf(allowed, k)
			if i < 0 {
				refuse(http.StatusBadRequest, "contract: undocumented field "+k)
				return false
			}
			if _, ok := v.(string); !ok {
				refuse(http.StatusBadRequest, "contract: "+k+" is a string (labels and assignees are comma-separated)")
				return false
			}
		}
		return true
	}
	number, _ := strconv.ParseInt(m[2], 10, 64)
	key := r.Method + " " + strings.TrimPrefix(m[1], "/")
	if number != 0 {
		key = r.Method + " pulls/N" + m[3]
	}
	g.calls = append(g.calls, key)
	write := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	pr := g.prs[number]
	if number != 0 && pr == nil {
		refuse(http.StatusNotFound, "404 Not Found")
		return
	}
	switch key {
	case "GET pulls":
		q := r.URL.Query()
		if n, _ := strconv.Atoi(q.Get("per_page")); n > 100 {
			refuse(http.StatusBadRequest, "per_page is at most 100")
			return
		}
		var out []any
		for i := int64(1); i < g.next; i++ {
			p := g.prs[i]
			// The head filter takes a branch name, which a fork's branch can have too.
			if (q.Get("state") == "" || q.Get("state") == p.state) && (q.Get("head") == "" || q.Get("head") == p.head) && (q.Get("base") == "" || q.Get("base") == p.base) {
				out = append(out, g.json(p))
			}
		}
		write(http.StatusOK, out)
	case "POST pulls":
		if !only("title", "head", "base", "body", "labels", "assignees", "testers", "milestone_number", "draft", "prune_source_branch") {
			return
		}
		if body["title"] == nil || body["head"] == nil || body["base"] == nil {
			refuse(http.StatusBadRequest, "title, head and base are required")
			return
		}
		p := &giteeFake{number: g.next, head: body["head"].(string), base: body["base"].(string), from: "platform/apps", state: "open", mergeable: true}
		p.title, p.body, p.labels, p.assignees = str(body["title"]), str(body["body"]), str(body["labels"]), str(body["assignees"])
		p.sha = g.heads[p.head]
		g.prs[p.number] = p
		g.next++
		write(http.StatusCreated, g.json(p))
	case "PATCH pulls/N":
		if !only("title", "body", "state", "labels", "milestone_number", "draft") {
			return
		}
		if v, ok := body["title"]; ok {
			pr.title = v.(string)
		}
		if v, ok := body["body"]; ok {
			pr.body = v.(string)
		}
		if v, ok := body["labels"]; ok {
			pr.labels = v.(string)
		}
		write(http.StatusOK, g.json(pr))
	case "GET pulls/N":
		write(http.StatusOK, g.json(pr))
	case "PUT pulls/N/merge":
		if !only("merge_method", "prune_source_branch", "title", "description") {
			return
		}
		if mm := str(body["merge_method"]); mm != "" && mm != "merge" && mm != "squash" && mm != "rebase" {
			refuse(http.StatusBadRequest, "merge_method is merge, squash or rebase")
			return
		}
		if pr.state != "open" || !pr.mergeable {
			refuse(http.StatusMethodNotAllowed, "此 Pull Request 未通过设置的审查或测试，不能合并")
			return
		}
		pr.state, pr.mergeSha = "merged", fmt.Sprintf("m%039d", pr.number)
		g.merges = append(g.merges, pr.mergeSha+" base "+pr.sha)
		write(http.StatusOK, map[string]any{"sha": pr.mergeSha, "merged": true, "message": "Pull Request 已成功合并"})
	case "POST pulls/N/comments":
		if !only("body", "commit_id", "path", "position") || str(body["body"]) == "" {
			refuse(http.StatusBadRequest, "body is required")
			return
		}
		write(http.StatusCreated, map[string]any{"id": 1, "body": body["body"]})
	case "GET commits":
		var out []any
		for i := len(g.merges) - 1; i >= 0; i-- {
			f := strings.Fields(g.merges[i])
			out = append(out, map[string]any{"sha": f[0], "parents": []any{map[string]any{"sha": f[1]}, map[string]any{"sha": f[2]}}})
		}
		write(http.StatusOK, out)
	default:
		refuse(http.StatusNotFound, "404 Not Found")
	}
}

// json is a pull request as Gitee answers it (its documented fields, merge commit not among them).
func (g *giteeAPI) json(p *giteeFake) map[string]any {
	out := map[string]any{"id": 1000 + p.number, "number": p.number, "state": p.state, "title": p.title, "body": p.body,
		"html_url": fmt.Sprintf("https://gitee.com/platform/apps/pulls/%d", p.number), "mergeable": p.mergeable,
		"head": map[string]any{"ref": p.head, "sha": p.sha, "repo": map[string]any{"full_name": p.from}},
		"base": map[string]any{"ref": p.base, "sha": "base", "repo": map[string]any{"full_name": "platform/apps"}}}
	if p.state == "merged" {
		out["merged_at"] = "2026-12-01T10:00:00+08:00"
	}
	var labels []any
	for _, l := range strings.Split(p.labels, ",") {
		if l != "" {
			labels = append(labels, map[string]any{"name": l})
		}
	}
	out["labels"] = labels
	return out
}

func str(v any) string { s, _ := v.(string); return s }

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// TestGiteeContract runs the pull request life on Gitee's documented contract: a fork's pull
// request with imagehook's branch name is left alone and named; imagehook's is opened (labels and
// reviewers as Gitee takes them), updated in place on the next push, read back with its head;
// auto-merge refuses a head imagehook did not push and merges its own, after which the pull
// request reads merged with the merge commit; a pull request closed on Gitee reads closed;
// comments land. The token is never in a write's URL, and in no error or answer imagehook keeps.
func TestGiteeContract(t *testing.T) {
	const token = "gitee-pat-0123456789abcdef"
	api := newGiteeAPI(t, token)
	api.heads["imagehook/web"] = "c0ffee1"
	// A fork's pull request with the same branch name.
	api.prs[1] = &giteeFake{number: 1, head: "imagehook/web", base: "main", from: "eve/apps", state: "open", sha: "bad", mergeable: true}
	api.next = 2
	srv := httptest.NewServer(api)
	defer srv.Close()
	f, err := New(Config{Provider: Infer("https://gitee.com/platform/apps.git"), API: srv.URL + "/api/v5", RepoURL: "https://gitee.com/platform/apps.git", Token: token})
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
	if p := api.prs[2]; p.labels != "imagehook,deploy" || p.assignees != "alice,bob" {
		t.Errorf("created with labels %q, assignees %q", p.labels, p.assignees)
	}

	// The next push: the same pull request, updated in place.
	api.mu.Lock()
	api.heads["imagehook/web"], api.prs[2].sha = "c0ffee2", "c0ffee2"
	api.mu.Unlock()
	again, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "web 1.2", Body: "b2", Labels: []string{"imagehook"}})
	keep(again, err)
	if err != nil || again.Number != 2 || again.Head != "c0ffee2" || api.prs[2].title != "web 1.2" || api.prs[2].labels != "imagehook" || api.next != 3 {
		t.Fatalf("update in place: %+v %v (title %q, %d pull requests)", again, err, api.prs[2].title, api.next-1)
	}
	if api.prs[1].title != "" {
		t.Errorf("the fork's pull request was changed: %+v", api.prs[1])
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
	if !errors.Is(err, ErrForge) || api.prs[2].state != "open" {
		t.Fatalf("auto-merge of an old head: %v, state %s", err, api.prs[2].state)
	}
	if err := f.AutoMerge(ctx, 2, "c0ffee2"); err != nil {
		t.Fatal(err)
	}
	merged, err := f.Get(ctx, 2)
	keep(merged, err)
	if err != nil || merged.State != Merged || merged.MergeCommit != api.prs[2].mergeSha {
		t.Fatalf("merged: %+v %v", merged, err)
	}
	// A fresh client (a restart) finds the merge commit on the base branch.
	f2, _ := New(Config{Provider: "gitee", API: srv.URL + "/api/v5", RepoURL: "https://gitee.com/platform/apps.git", Token: token})
	if m, err := f2.Get(ctx, 2); err != nil || m.MergeCommit != api.prs[2].mergeSha {
		t.Errorf("merge commit after a restart: %+v %v", m, err)
	}
	if err := f.CancelAutoMerge(ctx, 2); err != nil {
		t.Error(err)
	}

	// Closed on Gitee; not mergeable is said.
	api.mu.Lock()
	api.prs[3] = &giteeFake{number: 3, head: "imagehook/api", base: "main", from: "platform/apps", state: "closed", sha: "a1"}
	api.prs[4] = &giteeFake{number: 4, head: "imagehook/db", base: "main", from: "platform/apps", state: "open", sha: "d1"}
	api.next = 5
	api.mu.Unlock()
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
	api.mu.Lock()
	api.fail = "internal error"
	api.mu.Unlock()
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
	for _, u := range api.urls {
		if strings.Contains(u, token) && !strings.HasPrefix(u, "GET ") {
			t.Errorf("the token in a write's URL: %s", u)
		}
	}
	for _, want := range []string{"POST pulls", "PATCH pulls/N", "PUT pulls/N/merge", "POST pulls/N/comments", "GET commits"} {
		if indexOf(api.calls, want) < 0 {
			t.Errorf("never called %s: %v", want, api.calls)
		}
	}
}
