// Package forgetest plays forges that cannot run here — Gitee's OpenAPI v5, Codeup's (Yunxiao's)
// OpenAPI — as their API
// documentation describes them, for the forge client's contract tests and the flow's: each
// server checks paths, methods, the documented fields and where the token travels, and keeps
// pull requests as state.
package forgetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Gitee plays Gitee's OpenAPI v5 as its documentation describes it (gitee.com cannot be reached
// from here): the pull request endpoints under /api/v5/repos/{owner}/{repo}, the access_token
// parameter on every request — in the JSON body of a write, in the query of a read — the
// documented fields of each request (refusing others, and refusing a token in a write's URL), and
// answers shaped like Gitee's. It keeps pull requests as state, so that opening, updating in
// place, merging and reading back are checked together.
type Gitee struct {
	// Token is the personal access token the API accepts.
	Token string
	// Repo is the repository's owner/name.
	Repo string
	// Branch, when set, reads a branch's head from a real repository (each answer names it);
	// Merge then merges head into base there and returns the merge commit.
	Branch func(name string) string
	Merge  func(head, base string) (string, error)

	// Mu guards what follows, which tests may read and set.
	Mu     sync.Mutex
	PRs    map[int64]*GiteePR
	Next   int64
	Heads  map[string]string // branch → sha, without Branch
	Merges []string          // commits on the base made by merges: "sha parent1 parent2 [message]" (parent2 "-": a squash)
	URLs   []string          // every request line, to scan for the token
	Calls  []string          // "METHOD path" of every accepted request
	Fail   string            // when set, every answer is a 500 echoing the request (a forge that quotes it)
}

// GiteePR is one pull request the server keeps.
type GiteePR struct {
	Number                 int64
	Head, Base, From, Body string
	Title, Labels          string
	Assignees              string
	State, Sha, MergeSha   string
	Mergeable              bool
}

// NewGitee returns a server for repo (owner/name) accepting token.
func NewGitee(token, repo string) *Gitee {
	return &Gitee{Token: token, Repo: repo, PRs: map[int64]*GiteePR{}, Next: 1, Heads: map[string]string{}}
}

// giteeCall is one request the Gitee server answers: its body (without the token) and the pull
// request its path names.
type giteeCall struct {
	w    http.ResponseWriter
	r    *http.Request
	body map[string]any
	pr   *GiteePR
}

func (c *giteeCall) write(code int, v any) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(code)
	_ = json.NewEncoder(c.w).Encode(v)
}

func (c *giteeCall) refuse(code int, msg string) { c.write(code, map[string]string{"message": msg}) }

// only refuses fields Gitee's endpoint does not document, and checks the types it documents.
func (c *giteeCall) only(allowed ...string) bool {
	for k, v := range c.body {
		if indexOf(allowed, k) < 0 {
			c.refuse(http.StatusBadRequest, "contract: undocumented field "+k)
			return false
		}
		if _, ok := v.(string); !ok {
			c.refuse(http.StatusBadRequest, "contract: "+k+" is a string (labels and assignees are comma-separated)")
			return false
		}
	}
	return true
}

// giteeRoutes are the endpoints the server plays, by method and path ("pulls/N": one pull
// request's).
var giteeRoutes = map[string]func(*Gitee, *giteeCall){
	"GET pulls":             (*Gitee).listPulls,
	"POST pulls":            (*Gitee).openPull,
	"PATCH pulls/N":         (*Gitee).updatePull,
	"GET pulls/N":           func(g *Gitee, c *giteeCall) { c.write(http.StatusOK, g.json(c.pr)) },
	"PUT pulls/N/merge":     (*Gitee).mergePull,
	"POST pulls/N/comments": (*Gitee).comment,
	"GET commits":           (*Gitee).commits,
}

// ServeHTTP answers as Gitee's API does.
func (g *Gitee) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.Mu.Lock()
	defer g.Mu.Unlock()
	g.URLs = append(g.URLs, r.Method+" "+r.URL.String())
	c := &giteeCall{w: w, r: r}
	if !g.authenticate(c) {
		return
	}
	giteePath := regexp.MustCompile(`^/api/v5/repos/` + regexp.QuoteMeta(g.Repo) + `(/pulls(?:/(\d+)(/merge|/comments)?)?|/commits)$`)
	m := giteePath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		c.refuse(http.StatusNotFound, "404 Not Found")
		return
	}
	number, _ := strconv.ParseInt(m[2], 10, 64)
	key := r.Method + " " + strings.TrimPrefix(m[1], "/")
	if number != 0 {
		key = r.Method + " pulls/N" + m[3]
	}
	g.Calls = append(g.Calls, key)
	c.pr = g.PRs[number]
	if number != 0 && c.pr == nil {
		c.refuse(http.StatusNotFound, "404 Not Found")
		return
	}
	route := giteeRoutes[key]
	if route == nil {
		c.refuse(http.StatusNotFound, "404 Not Found")
		return
	}
	route(g, c)
}

// authenticate checks where the token travels — the query of a read, the JSON body of a write —
// and reads the body; it answers and returns false when the request is refused.
func (g *Gitee) authenticate(c *giteeCall) bool {
	r := c.r
	raw, _ := io.ReadAll(r.Body)
	if g.Fail != "" {
		c.refuse(http.StatusInternalServerError, g.Fail+": "+r.URL.String()+" "+string(raw))
		return false
	}
	if r.Method == http.MethodGet {
		if len(raw) > 0 {
			c.refuse(http.StatusBadRequest, "a GET has no body")
			return false
		}
		if r.URL.Query().Get("access_token") != g.Token {
			c.refuse(http.StatusUnauthorized, "401 Unauthorized: Access token does not exist")
			return false
		}
		return true
	}
	if r.URL.Query().Has("access_token") {
		c.refuse(http.StatusBadRequest, "contract: the token belongs in the body of a write, not its URL")
		return false
	}
	if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(raw, &c.body) != nil {
		c.refuse(http.StatusBadRequest, "contract: a JSON body")
		return false
	}
	if c.body["access_token"] != g.Token {
		c.refuse(http.StatusUnauthorized, "401 Unauthorized: Access token does not exist")
		return false
	}
	delete(c.body, "access_token")
	return true
}

func (g *Gitee) listPulls(c *giteeCall) {
	q := c.r.URL.Query()
	if n, _ := strconv.Atoi(q.Get("per_page")); n > 100 {
		c.refuse(http.StatusBadRequest, "per_page is at most 100")
		return
	}
	var out []any
	for i := int64(1); i < g.Next; i++ {
		p := g.PRs[i]
		// The head filter takes a branch name, which a fork's branch can have too.
		if (q.Get("state") == "" || q.Get("state") == p.State) && (q.Get("head") == "" || q.Get("head") == p.Head) && (q.Get("base") == "" || q.Get("base") == p.Base) {
			out = append(out, g.json(p))
		}
	}
	c.write(http.StatusOK, out)
}

func (g *Gitee) openPull(c *giteeCall) {
	body := c.body
	if !c.only("title", "head", "base", "body", "labels", "assignees", "testers", "milestone_number", "draft", "prune_source_branch") {
		return
	}
	if body["title"] == nil || body["head"] == nil || body["base"] == nil {
		c.refuse(http.StatusBadRequest, "title, head and base are required")
		return
	}
	p := &GiteePR{Number: g.Next, Head: body["head"].(string), Base: body["base"].(string), From: g.Repo, State: "open", Mergeable: true}
	p.Title, p.Body, p.Labels, p.Assignees = str(body["title"]), str(body["body"]), str(body["labels"]), str(body["assignees"])
	p.Sha = g.head(p.Head)
	g.PRs[p.Number] = p
	g.Next++
	c.write(http.StatusCreated, g.json(p))
}

func (g *Gitee) updatePull(c *giteeCall) {
	if !c.only("title", "body", "state", "labels", "milestone_number", "draft") {
		return
	}
	pr := c.pr
	if v, ok := c.body["title"]; ok {
		pr.Title = v.(string)
	}
	if v, ok := c.body["body"]; ok {
		pr.Body = v.(string)
	}
	if v, ok := c.body["labels"]; ok {
		pr.Labels = v.(string)
	}
	c.write(http.StatusOK, g.json(pr))
}

func (g *Gitee) mergePull(c *giteeCall) {
	if !c.only("merge_method", "prune_source_branch", "title", "description") {
		return
	}
	pr := c.pr
	if mm := str(c.body["merge_method"]); mm != "" && mm != "merge" && mm != "squash" && mm != "rebase" {
		c.refuse(http.StatusBadRequest, "merge_method is merge, squash or rebase")
		return
	}
	if pr.State != "open" || !pr.Mergeable {
		c.refuse(http.StatusMethodNotAllowed, "此 Pull Request 未通过设置的审查或测试，不能合并")
		return
	}
	sha := fmt.Sprintf("m%039d", pr.Number)
	if g.Merge != nil {
		var err error
		if sha, err = g.Merge(pr.Head, pr.Base); err != nil {
			c.refuse(http.StatusInternalServerError, "merge: "+err.Error())
			return
		}
	}
	pr.State, pr.MergeSha = "merged", sha
	g.Merges = append(g.Merges, pr.MergeSha+" base "+pr.Sha)
	c.write(http.StatusOK, map[string]any{"sha": pr.MergeSha, "merged": true, "message": "Pull Request 已成功合并"})
}

func (g *Gitee) comment(c *giteeCall) {
	if !c.only("body", "commit_id", "path", "position") || str(c.body["body"]) == "" {
		c.refuse(http.StatusBadRequest, "body is required")
		return
	}
	c.write(http.StatusCreated, map[string]any{"id": 1, "body": c.body["body"]})
}

func (g *Gitee) commits(c *giteeCall) {
	var out []any
	for i := len(g.Merges) - 1; i >= 0; i-- {
		f := strings.Fields(g.Merges[i])
		m := map[string]any{"sha": f[0], "parents": []any{map[string]any{"sha": f[1]}, map[string]any{"sha": f[2]}}}
		if f[2] == "-" {
			// A squash: one parent, and the message Gitee writes.
			m["parents"] = []any{map[string]any{"sha": f[1]}}
		}
		if len(f) > 3 {
			m["commit"] = map[string]any{"message": strings.Join(f[3:], " ")}
		}
		out = append(out, m)
	}
	c.write(http.StatusOK, out)
}

// head is a branch's head.
func (g *Gitee) head(branch string) string {
	if g.Branch != nil {
		return g.Branch(branch)
	}
	return g.Heads[branch]
}

// json is a pull request as Gitee answers it (its documented fields, merge commit not among them).
func (g *Gitee) json(p *GiteePR) map[string]any {
	if g.Branch != nil && p.State == "open" && p.From == g.Repo {
		p.Sha = g.Branch(p.Head)
	}
	out := map[string]any{"id": 1000 + p.Number, "number": p.Number, "state": p.State, "title": p.Title, "body": p.Body,
		"html_url": fmt.Sprintf("https://gitee.com/%s/pulls/%d", g.Repo, p.Number), "mergeable": p.Mergeable,
		"head": map[string]any{"ref": p.Head, "sha": p.Sha, "repo": map[string]any{"full_name": p.From}},
		"base": map[string]any{"ref": p.Base, "sha": "base", "repo": map[string]any{"full_name": g.Repo}}}
	if p.State == "merged" {
		out["merged_at"] = "2026-12-01T10:00:00+08:00"
	}
	var labels []any
	for _, l := range strings.Split(p.Labels, ",") {
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
