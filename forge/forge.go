// Package forge opens and follows pull (merge) requests on the forges teams host manifests on —
// Gitea and Forgejo, GitHub, GitLab, Gitee and Alibaba Cloud Codeup — through their REST APIs —
// and authenticates the webhooks they send about them (VerifyDelivery), which package listener
// asks. What each provider is (its names, hosts, client and webhook scheme) is one table,
// providers.go.
package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/imagehook/imagehook/internal/confyaml"
	"github.com/imagehook/imagehook/outbound"
	"github.com/imagehook/imagehook/redact"
)

// Request is the pull request imagehook wants open for its branch.
type Request struct {
	Head, Base  string
	Title, Body string
	Labels      []string
	Reviewers   []string
}

// PullRequest is what the forge says about one.
type PullRequest struct {
	Number int64
	URL    string
	// State is open, merged or closed (closed without merging).
	State string
	// MergeCommit is the commit the merge made on the base branch.
	MergeCommit string
	// Head is the commit the pull request's head branch ends in, as the forge last saw it.
	Head string
	// Fork is set when the head branch lives in another repository than the base (a fork), or in
	// one the forge no longer knows (a deleted fork): such a pull request is never imagehook's.
	Fork bool
	// LookAlikes, from Open, are the open pull requests from other repositories (forks) whose head
	// branch has imagehook's branch name: left alone, and named here so that the event says so
	// ("#3 from eve/apps").
	LookAlikes []string
}

// The states of a pull request.
const (
	Open   = "open"
	Merged = "merged"
	Closed = "closed"
)

// Forge is one repository's pull requests. It only ever acts on pull requests whose head branch
// lives in the repository itself: a fork's pull request with the same branch name is someone
// else's, whatever its name says.
type Forge interface {
	// Open opens a pull request from r.Head in the repository itself, or updates the one already
	// open for it (title, body, labels), so that a branch never has two. Pull requests from forks
	// are never updated; those with the same branch name come back in LookAlikes.
	Open(ctx context.Context, r Request) (PullRequest, error)
	// Get reads a pull request's state.
	Get(ctx context.Context, number int64) (PullRequest, error)
	// AutoMerge asks the forge to merge once its checks pass, where the API allows it, and only
	// while the pull request's head is still head (the commit imagehook pushed).
	AutoMerge(ctx context.Context, number int64, head string) error
	// CancelAutoMerge withdraws an AutoMerge (a commit imagehook did not push reached the branch).
	CancelAutoMerge(ctx context.Context, number int64) error
	// Comment adds a comment to the pull request's conversation.
	Comment(ctx context.Context, number int64, body string) error
}

// WriteBack is how changes reach a repository's branch: a repository's writeBack: section of the
// config file, decoded by package config. The forge reads its provider, API, token and Codeup
// names; the review flow reads the rest.
type WriteBack struct {
	// Mode is push (commit to the branch) or pullRequest (commit to imagehook's own branch and
	// open, or update, a pull request to the branch).
	Mode string `yaml:"mode"`
	// Provider is gitea (also Forgejo), github, gitlab, gitee or codeup; inferred from
	// well-known hosts (Infer).
	Provider string `yaml:"provider"`
	// API is the API base URL of a self-hosted forge (default: the provider's, on the repo's host).
	API       string `yaml:"api"`
	Token     string `yaml:"token" secret:"true"`
	TokenFile string `yaml:"tokenFile" secretfile:"Token"`
	// Branch names imagehook's branch per target, a template over .Target (Workload, Namespace,
	// Container, Path, Repo) and .Hook; default "imagehook/{{ .Target.Workload }}".
	Branch string `yaml:"branch"`
	// Merge is none (people merge) or auto (the forge merges when its checks pass).
	Merge     string   `yaml:"merge"`
	Labels    []string `yaml:"labels"`
	Reviewers []string `yaml:"reviewers"`
	// Language of the pull request's title and body: en or zh.
	Language string `yaml:"language"`
	// WebhookSecret checks the forge's webhooks at POST /forges/{repo} (GitHub/Gitea HMAC, GitLab
	// token, Gitee's password or signing key, Codeup's secret token); a delivery makes imagehook
	// look at its pull requests at once.
	WebhookSecret string `yaml:"webhookSecret" secret:"true"`
	// PollInterval is how often open pull requests are read when no webhook comes (default 1m).
	PollInterval confyaml.Duration `yaml:"pollInterval"`
	// Codeup names the repository for Codeup's API (provider codeup only).
	Codeup CodeupRepo `yaml:"codeup"`
}

// CodeupRepo names a repository on Alibaba Cloud Codeup (云效) for its OpenAPI
// (writeBack.codeup). Both are optional: the organization id is the first segment of a
// codeup.aliyun.com URL's path, and the repository is then named by its full path.
type CodeupRepo struct {
	// OrganizationID is the Yunxiao organization id (组织 ID).
	OrganizationID string `yaml:"organizationId"`
	// RepositoryID is the repository's numeric id, or its full path ("org/group/apps").
	RepositoryID string `yaml:"repositoryId"`
}

// PullRequests reports whether the repository is written through pull requests.
func (w WriteBack) PullRequests() bool { return w.Mode == "pullRequest" }

// AutoMerges reports whether imagehook asks the forge to merge its pull requests once their checks
// pass (merge: auto).
func (w WriteBack) AutoMerges() bool { return w.Merge == "auto" }

// SetDefaults fills what a pull-request write-back leaves out (package config calls it at load,
// so check-config shows what is used): the provider inferred from the repository's URL, the
// branch template and the poll interval.
func (w *WriteBack) SetDefaults(repoURL string) {
	if !w.PullRequests() {
		return
	}
	if w.Provider == "" {
		w.Provider = Infer(repoURL)
	}
	if w.Branch == "" {
		w.Branch = "imagehook/{{ .Target.Workload }}"
	}
	if w.PollInterval == 0 {
		w.PollInterval = confyaml.Duration(defaultPoll)
	}
}

// defaultPoll is the poll interval a write-back that names none uses.
const defaultPoll = time.Minute

// Poll is the poll interval, the default one for a WriteBack built without SetDefaults (a
// ticker refuses zero).
func (w WriteBack) Poll() time.Duration {
	if w.PollInterval <= 0 {
		return defaultPoll
	}
	return time.Duration(w.PollInterval)
}

// ErrForge is a forge's refusal; its text carries the forge's own message.
var ErrForge = errors.New("forge refused")

// ErrForeign refuses a pull request whose head branch is not in the repository itself.
var ErrForeign = errors.New("pull request from another repository")

// New returns the forge of a repository's write-back, built by its provider's entry in the table
// (providers.go): repoURL is the repository's clone URL (the owner and name come from its path),
// hc makes the requests (nil: one with a 30 s timeout).
// Codeup's organization and repository "" are taken from repoURL's path
// (codeup.aliyun.com/{organization}/…).
func New(w WriteBack, repoURL string, hc *http.Client) (Forge, error) {
	host, path, err := splitRepoURL(repoURL)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = outbound.Client(30*time.Second, nil)
	}
	scheme := "https"
	if u, err := url.Parse(repoURL); err == nil && u.Scheme == "http" {
		scheme = "http"
	}
	p, ok := lookup(w.Provider, true)
	if !ok {
		return nil, fmt.Errorf("forge provider %q: want one of %s", w.Provider, strings.Join(Providers, ", "))
	}
	at := endpoint{scheme: scheme, host: host, path: path, api: strings.TrimSuffix(w.API, "/")}
	return p.build(&client{http: hc, token: w.Token}, at, w)
}

// splitRepoURL returns the host and the owner/name path of a clone URL: https://host/o/r.git,
// ssh://git@host/o/r.git or git@host:o/r.git.
func splitRepoURL(raw string) (host, path string, err error) {
	if !strings.Contains(raw, "://") {
		if at, rest, ok := strings.Cut(raw, ":"); ok && strings.Contains(at, "@") && !strings.HasPrefix(rest, "/") {
			_, h, _ := strings.Cut(at, "@")
			host, path = h, rest
		}
	} else if u, perr := url.Parse(raw); perr == nil {
		host, path = u.Hostname(), strings.TrimPrefix(u.Path, "/")
		if u.Port() != "" && u.Scheme != "ssh" {
			host = u.Host
		}
	}
	path = strings.TrimSuffix(strings.TrimSuffix(path, "/"), ".git")
	if host == "" || !strings.Contains(path, "/") {
		return "", "", fmt.Errorf("repository URL %q: want https://host/owner/name(.git) or git@host:owner/name", redact.URL(raw))
	}
	return host, path, nil
}

// client is the JSON-over-HTTP part every forge shares.
type client struct {
	http  *http.Client
	base  string
	token string
	// auth is the Authorization header's value; header, when set, carries the bare token instead.
	auth, header string
	// param, when set, carries the token as a parameter instead (Gitee's access_token): in the
	// JSON body of a request that has one, in the query of one that has none — added where the
	// request is sent, so that no URL imagehook keeps or reports holds it.
	param string
}

// maxResponse bounds what a forge's answer may make imagehook read.
const maxResponse = 4 << 20

// do sends a JSON request to base+path and decodes the answer into out (nil: discarded).
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if c.param != "" && in != nil {
		m, ok := in.(map[string]any)
		if !ok {
			return fmt.Errorf("%s %s: a body carrying the token must be an object", method, path)
		}
		with := make(map[string]any, len(m)+1)
		for k, v := range m {
			with[k] = v
		}
		with[c.param] = c.token
		in = with
	}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.param != "":
		if in == nil {
			// No body to carry it: the query, set on the request only (the URL the client
			// quotes in its errors is taken apart below).
			q := req.URL.Query()
			q.Set(c.param, c.token)
			req.URL.RawQuery = q.Encode()
		}
	case c.header != "":
		req.Header.Set(c.header, c.token)
	default:
		req.Header.Set("Authorization", c.auth)
	}
	req.Header.Set("User-Agent", "imagehook")
	resp, err := c.http.Do(req)
	if err != nil {
		// Go's client quotes the request's URL whole in its error, which for a token sent as a
		// parameter holds it: only the cause is kept, named by the path imagehook asked for.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := message(data)
		if len(c.token) >= 4 {
			// A forge that echoes the request back (its parameters) must not make imagehook
			// repeat the token.
			msg = strings.ReplaceAll(msg, c.token, "[redacted]")
		}
		return fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrForge, method, path, resp.StatusCode, msg)
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return nil
}

// message picks a forge's error text out of its answer, one line and short.
func message(data []byte) string {
	var m struct {
		Message any `json:"message"`
		Error   any `json:"error"`
		// Codeup's (Yunxiao's) shape.
		ErrorMessage any `json:"errorMessage"`
	}
	text := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &m) == nil {
		switch {
		case m.Message != nil:
			text = fmt.Sprint(m.Message)
		case m.Error != nil:
			text = fmt.Sprint(m.Error)
		case m.ErrorMessage != nil:
			text = fmt.Sprint(m.ErrorMessage)
		}
	}
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	return text
}
