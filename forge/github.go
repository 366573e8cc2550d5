package forge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// github speaks GitHub's REST API (and its GraphQL API for auto-merge, which REST lacks).
type github struct {
	c     *client
	owner string
	// repo is owner/name: a pull request whose head.repo.full_name differs is from a fork.
	repo string
}

// newGitHub builds GitHub's client: its API defaults to api.github.com's, whatever the
// repository's host (GitHub Enterprise Server sets api:).
func newGitHub(c *client, at endpoint, _ WriteBack) (Forge, error) {
	api := at.api
	if api == "" {
		api = "https://api.github.com"
	}
	owner, _, _ := strings.Cut(at.path, "/")
	c.base, c.auth = api+"/repos/"+at.path, "Bearer "+c.token
	return &github{c: c, owner: owner, repo: at.path}, nil
}

type githubPR struct {
	Number         int64  `json:"number"`
	NodeID         string `json:"node_id"`
	HTMLURL        string `json:"html_url"`
	State          string `json:"state"`
	Merged         bool   `json:"merged"`
	MergedAt       string `json:"merged_at"`
	MergeCommitSHA string `json:"merge_commit_sha"`
	Head           struct {
		Ref  string `json:"ref"`
		Sha  string `json:"sha"`
		Repo *struct {
			FullName string `json:"full_name"`
		} `json:"repo"`
	} `json:"head"`
}

// fork reports whether the head branch lives outside repo (head.repo is null for a deleted fork).
func (p githubPR) fork(repo string) bool {
	return p.Head.Repo == nil || !strings.EqualFold(p.Head.Repo.FullName, repo)
}

func (p githubPR) lookAlike() string {
	from := "a deleted repository"
	if p.Head.Repo != nil {
		from = p.Head.Repo.FullName
	}
	return fmt.Sprintf("#%d from %s", p.Number, from)
}

func (g *github) out(p githubPR) PullRequest {
	out := p.pr()
	out.Fork = p.fork(g.repo)
	return out
}

func (p githubPR) pr() PullRequest {
	out := PullRequest{Number: p.Number, URL: p.HTMLURL, State: Open, Head: p.Head.Sha}
	switch {
	case p.Merged || p.MergedAt != "":
		out.State, out.MergeCommit = Merged, p.MergeCommitSHA
	case p.State == "closed":
		out.State = Closed
	}
	return out
}

func (g *github) Open(ctx context.Context, r Request) (PullRequest, error) {
	var open []githubPR
	q := url.Values{"state": {"open"}, "head": {g.owner + ":" + r.Head}, "base": {r.Base}}
	if err := g.c.do(ctx, http.MethodGet, "/pulls?"+q.Encode(), nil, &open); err != nil {
		return PullRequest{}, err
	}
	// The head filter names the owner, not the repository: a same-owner fork would match it.
	var own *githubPR
	var lookAlikes []string
	for i := range open {
		if open[i].fork(g.repo) {
			lookAlikes = append(lookAlikes, open[i].lookAlike())
		} else if own == nil {
			own = &open[i]
		}
	}
	var pr githubPR
	body := map[string]any{"title": r.Title, "body": r.Body}
	if own != nil {
		if err := g.c.do(ctx, http.MethodPatch, fmt.Sprintf("/pulls/%d", own.Number), body, &pr); err != nil {
			return PullRequest{}, err
		}
	} else {
		body["head"], body["base"] = r.Head, r.Base
		if err := g.c.do(ctx, http.MethodPost, "/pulls", body, &pr); err != nil {
			return PullRequest{LookAlikes: lookAlikes}, err
		}
	}
	out := g.out(pr)
	out.LookAlikes = lookAlikes
	if out.Fork {
		return PullRequest{LookAlikes: append(lookAlikes, pr.lookAlike())}, fmt.Errorf("%w: pull request %s is not from this repository", ErrForeign, pr.lookAlike())
	}
	if own == nil && len(r.Reviewers) > 0 {
		if err := g.c.do(ctx, http.MethodPost, fmt.Sprintf("/pulls/%d/requested_reviewers", pr.Number), map[string]any{"reviewers": r.Reviewers}, nil); err != nil {
			return out, fmt.Errorf("reviewers: %w", err)
		}
	}
	if len(r.Labels) > 0 {
		// Pull requests are issues for labels; missing labels are created by GitHub.
		if err := g.c.do(ctx, http.MethodPost, fmt.Sprintf("/issues/%d/labels", pr.Number), map[string]any{"labels": r.Labels}, nil); err != nil {
			return out, fmt.Errorf("labels: %w", err)
		}
	}
	return out, nil
}

func (g *github) Get(ctx context.Context, number int64) (PullRequest, error) {
	var pr githubPR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls/%d", number), nil, &pr); err != nil {
		return PullRequest{}, err
	}
	return g.out(pr), nil
}

// AutoMerge enables GitHub's auto-merge (the repository must allow it), through GraphQL: REST can
// only merge now. expectedHeadOid makes GitHub merge that head only.
func (g *github) AutoMerge(ctx context.Context, number int64, head string) error {
	return g.graphql(ctx, number, "auto-merge",
		"mutation($id: ID!, $head: GitObjectID) { enablePullRequestAutoMerge(input: {pullRequestId: $id, expectedHeadOid: $head}) { clientMutationId } }",
		map[string]string{"head": head})
}

// CancelAutoMerge disables GitHub's auto-merge.
func (g *github) CancelAutoMerge(ctx context.Context, number int64) error {
	return g.graphql(ctx, number, "cancel auto-merge",
		"mutation($id: ID!) { disablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }", nil)
}

// graphql runs a mutation on the pull request's node id (GraphQL's name for it).
func (g *github) graphql(ctx context.Context, number int64, what, mutation string, vars map[string]string) error {
	var pr githubPR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls/%d", number), nil, &pr); err != nil {
		return err
	}
	api, _, _ := strings.Cut(g.c.base, "/repos/")
	gql := &client{http: g.c.http, base: api, auth: g.c.auth}
	var out struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	variables := map[string]string{"id": pr.NodeID}
	for k, v := range vars {
		variables[k] = v
	}
	if err := gql.do(ctx, http.MethodPost, "/graphql", map[string]any{"query": mutation, "variables": variables}, &out); err != nil {
		return err
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrForge, what, out.Errors[0].Message)
	}
	return nil
}

// Comment comments on the pull request (an issue, for comments).
func (g *github) Comment(ctx context.Context, number int64, body string) error {
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/issues/%d/comments", number), map[string]string{"body": body}, nil)
}
