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
}

type githubPR struct {
	Number         int64  `json:"number"`
	NodeID         string `json:"node_id"`
	HTMLURL        string `json:"html_url"`
	State          string `json:"state"`
	Merged         bool   `json:"merged"`
	MergedAt       string `json:"merged_at"`
	MergeCommitSHA string `json:"merge_commit_sha"`
}

func (p githubPR) pr() PullRequest {
	out := PullRequest{Number: p.Number, URL: p.HTMLURL, State: Open}
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
	var pr githubPR
	body := map[string]any{"title": r.Title, "body": r.Body}
	if len(open) > 0 {
		if err := g.c.do(ctx, http.MethodPatch, fmt.Sprintf("/pulls/%d", open[0].Number), body, &pr); err != nil {
			return PullRequest{}, err
		}
	} else {
		body["head"], body["base"] = r.Head, r.Base
		if err := g.c.do(ctx, http.MethodPost, "/pulls", body, &pr); err != nil {
			return PullRequest{}, err
		}
		if len(r.Reviewers) > 0 {
			if err := g.c.do(ctx, http.MethodPost, fmt.Sprintf("/pulls/%d/requested_reviewers", pr.Number), map[string]any{"reviewers": r.Reviewers}, nil); err != nil {
				return pr.pr(), fmt.Errorf("reviewers: %w", err)
			}
		}
	}
	if len(r.Labels) > 0 {
		// Pull requests are issues for labels; missing labels are created by GitHub.
		if err := g.c.do(ctx, http.MethodPost, fmt.Sprintf("/issues/%d/labels", pr.Number), map[string]any{"labels": r.Labels}, nil); err != nil {
			return pr.pr(), fmt.Errorf("labels: %w", err)
		}
	}
	return pr.pr(), nil
}

func (g *github) Get(ctx context.Context, number int64) (PullRequest, error) {
	var pr githubPR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls/%d", number), nil, &pr); err != nil {
		return PullRequest{}, err
	}
	return pr.pr(), nil
}

// AutoMerge enables GitHub's auto-merge (the repository must allow it), through GraphQL: REST can
// only merge now.
func (g *github) AutoMerge(ctx context.Context, number int64) error {
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
	q := map[string]any{
		"query":     "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }",
		"variables": map[string]string{"id": pr.NodeID},
	}
	if err := gql.do(ctx, http.MethodPost, "/graphql", q, &out); err != nil {
		return err
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("%w: auto-merge: %s", ErrForge, out.Errors[0].Message)
	}
	return nil
}
