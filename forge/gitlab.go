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

// newGitLab builds GitLab's client: its API defaults to /api/v4 on the repository's host, and
// names the project by its URL-encoded path.
func newGitLab(c *client, at endpoint, _ WriteBack) (Forge, error) {
	api := at.api
	if api == "" {
		api = at.scheme + "://" + at.host + "/api/v4"
	}
	c.base, c.header = api+"/projects/"+url.PathEscape(at.path), "PRIVATE-TOKEN"
	return &gitlab{c: c}, nil
}

type gitlabMR struct {
	IID             int64  `json:"iid"`
	WebURL          string `json:"web_url"`
	State           string `json:"state"`
	MergeCommitSHA  string `json:"merge_commit_sha"`
	SquashCommitSHA string `json:"squash_commit_sha"`
	// SHA is the head of the source branch.
	SHA             string `json:"sha"`
	SourceProjectID int64  `json:"source_project_id"`
	TargetProjectID int64  `json:"target_project_id"`
}

// fork reports whether the source branch lives in another project than the target.
func (m gitlabMR) fork() bool {
	return m.SourceProjectID == 0 || m.SourceProjectID != m.TargetProjectID
}

func (m gitlabMR) lookAlike() string {
	return fmt.Sprintf("!%d from project %d", m.IID, m.SourceProjectID)
}

func (m gitlabMR) pr() PullRequest {
	out := PullRequest{Number: m.IID, URL: m.WebURL, State: Open, Head: m.SHA, Fork: m.fork()}
	switch m.State {
	case "merged":
		out.State, out.MergeCommit = Merged, m.MergeCommitSHA
		if out.MergeCommit == "" {
			out.MergeCommit = m.SquashCommitSHA
		}
		if out.MergeCommit == "" {
			// A fast-forward merge makes no merge commit: the base now ends in the head itself.
			out.MergeCommit = m.SHA
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
	// GitLab matches source_branch in every project, forks included.
	var own *gitlabMR
	var lookAlikes []string
	for i := range open {
		if open[i].fork() {
			lookAlikes = append(lookAlikes, open[i].lookAlike())
		} else if own == nil {
			own = &open[i]
		}
	}
	var mr gitlabMR
	checked := func() (PullRequest, error) {
		out := mr.pr()
		out.LookAlikes = lookAlikes
		if out.Fork {
			return PullRequest{LookAlikes: append(lookAlikes, mr.lookAlike())}, fmt.Errorf("%w: merge request %s is not from this project", ErrForeign, mr.lookAlike())
		}
		return out, nil
	}
	if own != nil {
		if err := g.c.do(ctx, http.MethodPut, fmt.Sprintf("/merge_requests/%d", own.IID), body, &mr); err != nil {
			return PullRequest{}, err
		}
		return checked()
	}
	body["source_branch"], body["target_branch"] = r.Head, r.Base
	if ids, err := g.userIDs(ctx, r.Reviewers); err != nil {
		return PullRequest{}, fmt.Errorf("reviewers: %w", err)
	} else if len(ids) > 0 {
		body["reviewer_ids"] = ids
	}
	if err := g.c.do(ctx, http.MethodPost, "/merge_requests", body, &mr); err != nil {
		return PullRequest{LookAlikes: lookAlikes}, err
	}
	return checked()
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

// AutoMerge sets "merge when the pipeline succeeds"; sha makes GitLab refuse any other head.
func (g *gitlab) AutoMerge(ctx context.Context, number int64, head string) error {
	return g.c.do(ctx, http.MethodPut, fmt.Sprintf("/merge_requests/%d/merge", number), map[string]any{"merge_when_pipeline_succeeds": true, "sha": head}, nil)
}

// CancelAutoMerge withdraws "merge when the pipeline succeeds".
func (g *gitlab) CancelAutoMerge(ctx context.Context, number int64) error {
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/merge_requests/%d/cancel_merge_when_pipeline_succeeds", number), nil, nil)
}

// Comment adds a note to the merge request.
func (g *gitlab) Comment(ctx context.Context, number int64, body string) error {
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/merge_requests/%d/notes", number), map[string]string{"body": body}, nil)
}
