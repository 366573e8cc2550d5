package forge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestSplitRepoURLAndInfer(t *testing.T) {
	for _, tt := range []struct{ url, host, path, provider string }{
		{"https://github.com/platform/apps.git", "github.com", "platform/apps", "github"},
		{"git@github.com:platform/apps.git", "github.com", "platform/apps", "github"},
		{"ssh://git@gitlab.com/group/sub/apps.git", "gitlab.com", "group/sub/apps", "gitlab"},
		{"https://tok:secret@gitea.example.com:3000/platform/apps/", "gitea.example.com:3000", "platform/apps", "gitea"},
		{"https://git.example.com/platform/apps", "git.example.com", "platform/apps", ""},
	} {
		host, path, err := splitRepoURL(tt.url)
		if err != nil || host != tt.host || path != tt.path || Infer(tt.url) != tt.provider {
			t.Errorf("%s: %q %q %v, provider %q", tt.url, host, path, err, Infer(tt.url))
		}
	}
	if _, _, err := splitRepoURL("https://tok:secret@git.example.com/apps"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("err = %v", err)
	}
}

// contract plays a forge's documented REST API (GitHub's and GitLab's cannot run here): it
// answers each request from the table and records what was sent, so the test checks that imagehook
// calls the documented endpoints with the documented fields.
type contract struct {
	mu      sync.Mutex
	answers map[string]string // "METHOD /path?query" → JSON answer
	got     []string          // "METHOD /path?query body"
	header  http.Header
}

func (c *contract) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.RequestURI()
	c.got = append(c.got, strings.TrimSpace(key+" "+string(body)))
	c.header = r.Header.Clone()
	answer, ok := c.answers[key]
	if !ok {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost && !strings.Contains(r.URL.Path, "/graphql") {
		w.WriteHeader(http.StatusCreated)
	}
	fmt.Fprint(w, answer)
}

func TestGitHubContract(t *testing.T) {
	c := &contract{answers: map[string]string{
		"GET /repos/platform/apps/pulls?base=main&head=platform%3Aimagehook%2Fweb&state=open": `[]`,
		"POST /repos/platform/apps/pulls":                       `{"number":7,"node_id":"PR_kw","html_url":"https://github.com/platform/apps/pull/7","state":"open"}`,
		"POST /repos/platform/apps/pulls/7/requested_reviewers": `{}`,
		"POST /repos/platform/apps/issues/7/labels":             `[]`,
		"GET /repos/platform/apps/pulls/7":                      `{"number":7,"node_id":"PR_kw","state":"closed","merged":true,"merge_commit_sha":"abc123"}`,
		"POST /graphql":                                         `{"data":{"enablePullRequestAutoMerge":{"clientMutationId":null}}}`,
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	f, err := New(Config{Provider: "github", API: srv.URL, RepoURL: "https://github.com/platform/apps.git", Token: "ghp_t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pr, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "t", Body: "b", Labels: []string{"imagehook"}, Reviewers: []string{"alice"}})
	if err != nil || pr.Number != 7 || pr.State != Open || pr.URL == "" {
		t.Fatalf("open: %+v %v\n%s", pr, err, strings.Join(c.got, "\n"))
	}
	if c.header.Get("Authorization") != "Bearer ghp_t0ken" {
		t.Errorf("Authorization %q", c.header.Get("Authorization"))
	}
	if err := f.AutoMerge(ctx, 7); err != nil {
		t.Fatal(err)
	}
	got, err := f.Get(ctx, 7)
	if err != nil || got.State != Merged || got.MergeCommit != "abc123" {
		t.Fatalf("get: %+v %v", got, err)
	}
	want := []string{
		`POST /repos/platform/apps/pulls {"base":"main","body":"b","head":"imagehook/web","title":"t"}`,
		`POST /repos/platform/apps/pulls/7/requested_reviewers {"reviewers":["alice"]}`,
		`POST /repos/platform/apps/issues/7/labels {"labels":["imagehook"]}`,
		`POST /graphql {"query":"mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }","variables":{"id":"PR_kw"}}`,
	}
	all := strings.Join(c.got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing request %s in:\n%s", w, all)
		}
	}
}

func TestGitLabContract(t *testing.T) {
	c := &contract{answers: map[string]string{
		"GET /api/v4/projects/group%2Fapps/merge_requests?source_branch=imagehook%2Fweb&state=opened&target_branch=main": `[{"iid":3,"web_url":"https://gitlab.example.com/group/apps/-/merge_requests/3","state":"opened"}]`,
		"PUT /api/v4/projects/group%2Fapps/merge_requests/3":                                                             `{"iid":3,"web_url":"https://gitlab.example.com/group/apps/-/merge_requests/3","state":"opened"}`,
		"GET /api/v4/projects/group%2Fapps/merge_requests/3":                                                             `{"iid":3,"state":"closed"}`,
		"PUT /api/v4/projects/group%2Fapps/merge_requests/3/merge":                                                       `{"iid":3,"state":"opened"}`,
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	f, err := New(Config{Provider: "gitlab", API: srv.URL + "/api/v4", RepoURL: "git@gitlab.example.com:group/apps.git", Token: "glpat-t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pr, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "t", Body: "b", Labels: []string{"imagehook", "deploy"}})
	if err != nil || pr.Number != 3 {
		t.Fatalf("open: %+v %v\n%s", pr, err, strings.Join(c.got, "\n"))
	}
	if c.header.Get("PRIVATE-TOKEN") != "glpat-t0ken" || c.header.Get("Authorization") != "" {
		t.Errorf("headers %v", c.header)
	}
	if err := f.AutoMerge(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Get(ctx, 3); err != nil || got.State != Closed {
		t.Fatalf("get: %+v %v", got, err)
	}
	all := strings.Join(c.got, "\n")
	for _, w := range []string{
		`PUT /api/v4/projects/group%2Fapps/merge_requests/3 {"description":"b","labels":"imagehook,deploy","title":"t"}`,
		`PUT /api/v4/projects/group%2Fapps/merge_requests/3/merge {"merge_when_pipeline_succeeds":true}`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("missing request %s in:\n%s", w, all)
		}
	}
}

// TestForgeErrorsAreShortAndSecretFree: a forge's refusal is reported with its message, one line,
// and never with the token.
func TestForgeErrorsAreShortAndSecretFree(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "token\nlacks scope " + strings.Repeat("x", 500)})
	}))
	defer srv.Close()
	f, _ := New(Config{Provider: "gitea", API: srv.URL, RepoURL: "https://gitea.example.com/p/apps.git", Token: "gitea-t0ken"})
	_, err := f.Get(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403: token lacks scope") || strings.Contains(err.Error(), "\n") ||
		strings.Contains(err.Error(), "gitea-t0ken") || len(err.Error()) > 400 {
		t.Errorf("err = %v", err)
	}
}
