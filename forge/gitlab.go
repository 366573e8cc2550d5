package forge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// gitlab speaks GitLab's REST API v4 (merge requests).
type gitlab struct{ c *client }

type gitlabMR struct {
	IID             int64  `json:"iid"`
	WebURL          string `json:"web_url"`
	State           string `json:"state"`
	MergeCommitSHA  string `json:"merge_commit_sha"`
	SquashCommitSHA string `json:"squash_commit_sha"`
}

func (m gitlabMR) pr() PullRequest {
	out := PullRequest{Number: m.IID, URL: m.WebURL, State: Open}
	switch m.State {
	case "merged":
		out.State, out.MergeCommit = Merged, m.MergeCommitSHA
		if out.MergeCommit == "" {
			out.MergeCommit = m.SquashCommitSHA
		}
	case "closed":
		out.State = Closed
	}
	return out
}

func (g *gitlab) Open(ctx context.Context, r Request) (PullRequest, error) {
	var open []gitlabMR
	q := url.Values{"state": {"opened"}, "source_branch": {r.Head}, "target_branch": {r.Base}}
	if err := g.c.do(ctx, http.MethodGet, "/merge_requests?"+q.Encode(), nil, &open); err != nil {
		return PullRequest{}, err
	}
	body := map[string]any{"title": r.Title, "description": r.Body}
	if len(r.Labels) > 0 {
		body["labels"] = strings.Join(r.Labels, ",")
	}
	var mr gitlabMR
	if len(open) > 0 {
		if err := g.c.do(ctx, http.MethodPut, fmt.Sprintf("/merge_requests/%d", open[0].IID), body, &mr); err != nil {
			return PullRequest{}, err
		}
		return mr.pr(), nil
	}
	body["source_branch"], body["target_branch"] = r.Head, r.Base
	if ids, err := g.userIDs(ctx, r.Reviewers); err != nil {
		return PullRequest{}, fmt.Errorf("reviewers: %w", err)
	} else if len(ids) > 0 {
		body["reviewer_ids"] = ids
	}
	if err := g.c.do(ctx, http.MethodPost, "/merge_requests", body, &mr); err != nil {
		return PullRequest{}, err
	}
	return mr.pr(), nil
}

// userIDs looks reviewers up by username: GitLab takes ids.
func (g *gitlab) userIDs(ctx context.Context, names []string) ([]int64, error) {
	api, _, _ := strings.Cut(g.c.base, "/projects/")
	users := &client{http: g.c.http, base: api, token: g.c.token, header: g.c.header}
	var ids []int64
	for _, n := range names {
		var found []struct {
			ID int64 `json:"id"`
		}
		if err := users.do(ctx, http.MethodGet, "/users?username="+url.QueryEscape(n), nil, &found); err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: no GitLab user %q", ErrForge, n)
		}
		ids = append(ids, found[0].ID)
	}
	return ids, nil
}

func (g *gitlab) Get(ctx context.Context, number int64) (PullRequest, error) {
	var mr gitlabMR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/merge_requests/%d", number), nil, &mr); err != nil {
		return PullRequest{}, err
	}
	return mr.pr(), nil
}

// AutoMerge sets "merge when the pipeline succeeds".
func (g *gitlab) AutoMerge(ctx context.Context, number int64) error {
	return g.c.do(ctx, http.MethodPut, fmt.Sprintf("/merge_requests/%d/merge", number), map[string]any{"merge_when_pipeline_succeeds": true}, nil)
}
