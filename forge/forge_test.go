package forge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagehook/imagehook/internal/confyaml"
)

func TestSplitRepoURLAndInfer(t *testing.T) {
	for _, tt := range []struct{ url, host, path, provider string }{
		{"https://github.com/platform/apps.git", "github.com", "platform/apps", "github"},
		{"git@github.com:platform/apps.git", "github.com", "platform/apps", "github"},
		{"ssh://git@gitlab.com/group/sub/apps.git", "gitlab.com", "group/sub/apps", "gitlab"},
		{"https://tok:secret@gitea.example.com:3000/platform/apps/", "gitea.example.com:3000", "platform/apps", "gitea"},
		{"https://git.example.com/platform/apps", "git.example.com", "platform/apps", ""},
		{"https://gitee.com/platform/apps.git", "gitee.com", "platform/apps", "gitee"},
		{"git@gitee.com:platform/apps.git", "gitee.com", "platform/apps", "gitee"},
		{"https://codeup.aliyun.com/60de7a6852743a5162b5f957/platform/apps.git", "codeup.aliyun.com", "60de7a6852743a5162b5f957/platform/apps", "codeup"},
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
		"POST /repos/platform/apps/pulls":                       `{"number":7,"node_id":"PR_kw","html_url":"https://github.com/platform/apps/pull/7","state":"open","head":{"ref":"imagehook/web","sha":"c0ffee","repo":{"full_name":"platform/apps"}}}`,
		"POST /repos/platform/apps/pulls/7/requested_reviewers": `{}`,
		"POST /repos/platform/apps/issues/7/labels":             `[]`,
		"GET /repos/platform/apps/pulls/7":                      `{"number":7,"node_id":"PR_kw","state":"closed","merged":true,"merge_commit_sha":"abc123","head":{"ref":"imagehook/web","sha":"c0ffee","repo":{"full_name":"platform/apps"}}}`,
		"POST /graphql":                                         `{"data":{"enablePullRequestAutoMerge":{"clientMutationId":null}}}`,
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	f, err := New(WriteBack{Provider: "github", API: srv.URL, Token: "ghp_t0ken"}, "https://github.com/platform/apps.git", nil)
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
	if pr.Head != "c0ffee" || pr.Fork {
		t.Errorf("open: head %q fork %v", pr.Head, pr.Fork)
	}
	if err := f.AutoMerge(ctx, 7, "c0ffee"); err != nil {
		t.Fatal(err)
	}
	got, err := f.Get(ctx, 7)
	if err != nil || got.State != Merged || got.MergeCommit != "abc123" || got.Fork {
		t.Fatalf("get: %+v %v", got, err)
	}
	want := []string{
		`POST /repos/platform/apps/pulls {"base":"main","body":"b","head":"imagehook/web","title":"t"}`,
		`POST /repos/platform/apps/pulls/7/requested_reviewers {"reviewers":["alice"]}`,
		`POST /repos/platform/apps/issues/7/labels {"labels":["imagehook"]}`,
		`POST /graphql {"query":"mutation($id: ID!, $head: GitObjectID) { enablePullRequestAutoMerge(input: {pullRequestId: $id, expectedHeadOid: $head}) { clientMutationId } }","variables":{"head":"c0ffee","id":"PR_kw"}}`,
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
		"GET /api/v4/projects/group%2Fapps/merge_requests?source_branch=imagehook%2Fweb&state=opened&target_branch=main": `[{"iid":3,"web_url":"https://gitlab.example.com/group/apps/-/merge_requests/3","state":"opened","sha":"c0ffee","source_project_id":12,"target_project_id":12}]`,
		"PUT /api/v4/projects/group%2Fapps/merge_requests/3":                                                             `{"iid":3,"web_url":"https://gitlab.example.com/group/apps/-/merge_requests/3","state":"opened","sha":"c0ffee","source_project_id":12,"target_project_id":12}`,
		"GET /api/v4/projects/group%2Fapps/merge_requests/3":                                                             `{"iid":3,"state":"closed","sha":"c0ffee","source_project_id":12,"target_project_id":12}`,
		"PUT /api/v4/projects/group%2Fapps/merge_requests/3/merge":                                                       `{"iid":3,"state":"opened"}`,
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	f, err := New(WriteBack{Provider: "gitlab", API: srv.URL + "/api/v4", Token: "glpat-t0ken"}, "git@gitlab.example.com:group/apps.git", nil)
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
	if err := f.AutoMerge(ctx, 3, "c0ffee"); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Get(ctx, 3); err != nil || got.State != Closed {
		t.Fatalf("get: %+v %v", got, err)
	}
	all := strings.Join(c.got, "\n")
	for _, w := range []string{
		`PUT /api/v4/projects/group%2Fapps/merge_requests/3 {"description":"b","labels":"imagehook,deploy","title":"t"}`,
		`PUT /api/v4/projects/group%2Fapps/merge_requests/3/merge {"merge_when_pipeline_succeeds":true,"sha":"c0ffee"}`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("missing request %s in:\n%s", w, all)
		}
	}
}

// TestForkLookAlikesAreNeverAdopted plays each forge's documented answers for a fork's pull request
// whose head branch has imagehook's branch name (Gitea's head.repo, GitHub's head.repo.full_name,
// GitLab's source_project_id name the fork): Open never updates it, opens imagehook's own from the
// repository's branch, and names the look-alike; Get marks a fork's pull request as one; the head
// is pinned on auto-merge, and cancel and comment use the documented endpoints.
func TestForkLookAlikesAreNeverAdopted(t *testing.T) {
	for _, tt := range []struct {
		name, provider, repoURL, api string
		answers                      map[string]string
		forbidden                    []string // requests that would touch the fork's pull request
		want                         []string
		lookAlike                    string
	}{{
		name: "gitea", provider: "gitea", repoURL: "https://gitea.example.com/platform/apps.git", api: "/api/v1",
		answers: map[string]string{
			"GET /api/v1/repos/platform/apps/pulls?state=open&limit=50&page=1": `[{"number":3,"state":"open","head":{"ref":"imagehook/web","sha":"bad","repo_id":9,"repo":{"id":9,"full_name":"eve/apps"}},"base":{"ref":"main","repo_id":1,"repo":{"id":1,"full_name":"platform/apps"}}}]`,
			"POST /api/v1/repos/platform/apps/pulls":                           `{"number":4,"state":"open","head":{"ref":"imagehook/web","sha":"c0ffee","repo_id":1,"repo":{"id":1,"full_name":"platform/apps"}},"base":{"ref":"main","repo_id":1,"repo":{"id":1,"full_name":"platform/apps"}}}`,
			"GET /api/v1/repos/platform/apps/pulls/3":                          `{"number":3,"state":"open","head":{"ref":"imagehook/web","sha":"bad","repo_id":9,"repo":{"id":9,"full_name":"eve/apps"}},"base":{"ref":"main","repo_id":1,"repo":{"id":1,"full_name":"platform/apps"}}}`,
			"POST /api/v1/repos/platform/apps/pulls/4/merge":                   `{}`,
			"DELETE /api/v1/repos/platform/apps/pulls/4/merge":                 ``,
			"POST /api/v1/repos/platform/apps/issues/4/comments":               `{}`,
		},
		forbidden: []string{"PATCH /api/v1/repos/platform/apps/pulls/3", "/pulls/3/merge"},
		want: []string{
			`POST /api/v1/repos/platform/apps/pulls {"base":"main","body":"b","head":"imagehook/web","title":"t"}`,
			`POST /api/v1/repos/platform/apps/pulls/4/merge {"Do":"merge","head_commit_id":"c0ffee","merge_when_checks_succeed":true}`,
			`DELETE /api/v1/repos/platform/apps/pulls/4/merge`,
			`POST /api/v1/repos/platform/apps/issues/4/comments {"body":"note"}`,
		},
		lookAlike: "#3 from eve/apps",
	}, {
		name: "github", provider: "github", repoURL: "https://github.com/platform/apps.git",
		answers: map[string]string{
			// A fork in the same owner matches GitHub's owner:branch filter.
			"GET /repos/platform/apps/pulls?base=main&head=platform%3Aimagehook%2Fweb&state=open": `[{"number":3,"node_id":"PR_fork","state":"open","head":{"ref":"imagehook/web","sha":"bad","repo":{"full_name":"platform/apps-fork"}}}]`,
			"POST /repos/platform/apps/pulls":             `{"number":4,"node_id":"PR_own","state":"open","head":{"ref":"imagehook/web","sha":"c0ffee","repo":{"full_name":"platform/apps"}}}`,
			"GET /repos/platform/apps/pulls/3":            `{"number":3,"node_id":"PR_fork","state":"open","head":{"ref":"imagehook/web","sha":"bad","repo":null}}`,
			"GET /repos/platform/apps/pulls/4":            `{"number":4,"node_id":"PR_own","state":"open","head":{"ref":"imagehook/web","sha":"c0ffee","repo":{"full_name":"platform/apps"}}}`,
			"POST /graphql":                               `{"data":{}}`,
			"POST /repos/platform/apps/issues/4/comments": `{}`,
		},
		forbidden: []string{"PATCH /repos/platform/apps/pulls/3", "PR_fork"},
		want: []string{
			`POST /repos/platform/apps/pulls {"base":"main","body":"b","head":"imagehook/web","title":"t"}`,
			`POST /graphql {"query":"mutation($id: ID!, $head: GitObjectID) { enablePullRequestAutoMerge(input: {pullRequestId: $id, expectedHeadOid: $head}) { clientMutationId } }","variables":{"head":"c0ffee","id":"PR_own"}}`,
			`POST /graphql {"query":"mutation($id: ID!) { disablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }","variables":{"id":"PR_own"}}`,
			`POST /repos/platform/apps/issues/4/comments {"body":"note"}`,
		},
		lookAlike: "#3 from platform/apps-fork",
	}, {
		name: "gitlab", provider: "gitlab", repoURL: "https://gitlab.example.com/group/apps.git", api: "/api/v4",
		answers: map[string]string{
			// GitLab's source_branch filter matches merge requests from forks too.
			"GET /api/v4/projects/group%2Fapps/merge_requests?source_branch=imagehook%2Fweb&state=opened&target_branch=main": `[{"iid":3,"state":"opened","sha":"bad","source_project_id":99,"target_project_id":12}]`,
			"POST /api/v4/projects/group%2Fapps/merge_requests":                                                              `{"iid":4,"state":"opened","sha":"c0ffee","source_project_id":12,"target_project_id":12}`,
			"GET /api/v4/projects/group%2Fapps/merge_requests/3":                                                             `{"iid":3,"state":"opened","sha":"bad","source_project_id":99,"target_project_id":12}`,
			"PUT /api/v4/projects/group%2Fapps/merge_requests/4/merge":                                                       `{}`,
			"POST /api/v4/projects/group%2Fapps/merge_requests/4/cancel_merge_when_pipeline_succeeds":                        `{}`,
			"POST /api/v4/projects/group%2Fapps/merge_requests/4/notes":                                                      `{}`,
		},
		forbidden: []string{"PUT /api/v4/projects/group%2Fapps/merge_requests/3", "merge_requests/3/merge"},
		want: []string{
			`POST /api/v4/projects/group%2Fapps/merge_requests {"description":"b","source_branch":"imagehook/web","target_branch":"main","title":"t"}`,
			`PUT /api/v4/projects/group%2Fapps/merge_requests/4/merge {"merge_when_pipeline_succeeds":true,"sha":"c0ffee"}`,
			`POST /api/v4/projects/group%2Fapps/merge_requests/4/cancel_merge_when_pipeline_succeeds`,
			`POST /api/v4/projects/group%2Fapps/merge_requests/4/notes {"body":"note"}`,
		},
		lookAlike: "!3 from project 99",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			c := &contract{answers: tt.answers}
			srv := httptest.NewServer(c)
			defer srv.Close()
			f, err := New(WriteBack{Provider: tt.provider, API: srv.URL + tt.api, Token: "t0ken"}, tt.repoURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			pr, err := f.Open(ctx, Request{Head: "imagehook/web", Base: "main", Title: "t", Body: "b"})
			if err != nil || pr.Number != 4 || pr.Fork || pr.Head != "c0ffee" || len(pr.LookAlikes) != 1 || pr.LookAlikes[0] != tt.lookAlike {
				t.Fatalf("open: %+v %v\n%s", pr, err, strings.Join(c.got, "\n"))
			}
			if fork, err := f.Get(ctx, 3); err != nil || !fork.Fork {
				t.Errorf("get the fork's: %+v %v", fork, err)
			}
			for _, call := range []func() error{
				func() error { return f.AutoMerge(ctx, 4, "c0ffee") },
				func() error { return f.CancelAutoMerge(ctx, 4) },
				func() error { return f.Comment(ctx, 4, "note") },
			} {
				if err := call(); err != nil {
					t.Error(err)
				}
			}
			all := strings.Join(c.got, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing request %s in:\n%s", w, all)
				}
			}
			for _, bad := range tt.forbidden {
				for _, got := range c.got {
					if strings.Contains(got, bad) && !strings.HasPrefix(got, "GET ") {
						t.Errorf("the fork's pull request was touched: %s", got)
					}
				}
			}
		})
	}
}

// TestOpenRefusesAForeignAnswer: should the forge answer Open with a pull request from another
// repository, imagehook refuses it instead of taking it for its own.
func TestOpenRefusesAForeignAnswer(t *testing.T) {
	c := &contract{answers: map[string]string{
		"GET /repos/platform/apps/pulls?base=main&head=platform%3Aimagehook%2Fweb&state=open": `[]`,
		"POST /repos/platform/apps/pulls": `{"number":4,"state":"open","head":{"ref":"imagehook/web","sha":"bad","repo":{"full_name":"eve/apps"}}}`,
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	f, _ := New(WriteBack{Provider: "github", API: srv.URL, Token: "t"}, "https://github.com/platform/apps.git", nil)
	pr, err := f.Open(context.Background(), Request{Head: "imagehook/web", Base: "main"})
	if !errors.Is(err, ErrForeign) || pr.Number != 0 {
		t.Errorf("open: %+v %v", pr, err)
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
	f, _ := New(WriteBack{Provider: "gitea", API: srv.URL, Token: "gitea-t0ken"}, "https://gitea.example.com/p/apps.git", nil)
	_, err := f.Get(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403: token lacks scope") || strings.Contains(err.Error(), "\n") ||
		strings.Contains(err.Error(), "gitea-t0ken") || len(err.Error()) > 400 {
		t.Errorf("err = %v", err)
	}
}

// TestTokensNeverFollowARedirectElsewhere (trust row 2): a forge API answering with a redirect to
// another host gets nothing sent there — GitLab's PRIVATE-TOKEN included, which Go's client would
// otherwise re-send — and the error holds no token.
func TestTokensNeverFollowARedirectElsewhere(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	defer thief.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	for _, provider := range []string{"gitlab", "github", "gitea", "gitee", "codeup"} {
		f, err := New(WriteBack{Provider: provider, API: api.URL, Token: "t0ken-" + provider}, "https://git.example.com/group/apps.git", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Get(context.Background(), 3)
		if err == nil || strings.Contains(err.Error(), "t0ken") {
			t.Errorf("%s: err = %v", provider, err)
		}
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("%d requests reached the other host", n)
	}
}

// TestPollHasADefault: a WriteBack built without SetDefaults (zero, or negative by hand) polls at
// the default interval instead of giving a ticker zero; a given interval is kept.
func TestPollHasADefault(t *testing.T) {
	for _, tt := range []struct {
		given confyaml.Duration
		want  time.Duration
	}{
		{0, time.Minute},
		{confyaml.Duration(-time.Second), time.Minute},
		{confyaml.Duration(5 * time.Second), 5 * time.Second},
	} {
		if got := (WriteBack{PollInterval: tt.given}).Poll(); got != tt.want {
			t.Errorf("Poll() with %v = %v, want %v", time.Duration(tt.given), got, tt.want)
		}
	}
}
