package forge

import (
	"context"
	"fmt"
	"net/http"
)

// gitea speaks Gitea's (and Forgejo's) API v1.
type gitea struct{ c *client }

type giteaPR struct {
	Number         int64  `json:"number"`
	HTMLURL        string `json:"html_url"`
	State          string `json:"state"`
	Merged         bool   `json:"merged"`
	MergeCommitSHA string `json:"merge_commit_sha"`
	Head           struct {
		Ref string `json:"ref"`
	} `json:"head"`
	Base struct {
		Ref string `json:"ref"`
	} `json:"base"`
}

func (p giteaPR) pr() PullRequest {
	out := PullRequest{Number: p.Number, URL: p.HTMLURL, State: Open}
	switch {
	case p.Merged:
		out.State, out.MergeCommit = Merged, p.MergeCommitSHA
	case p.State == "closed":
		out.State = Closed
	}
	return out
}

// maxPages bounds the listing of open pull requests (50 each).
const maxPages = 20

func (g *gitea) find(ctx context.Context, head, base string) (*giteaPR, error) {
	for page := 1; page <= maxPages; page++ {
		var prs []giteaPR
		if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls?state=open&limit=50&page=%d", page), nil, &prs); err != nil {
			return nil, err
		}
		for i := range prs {
			if prs[i].Head.Ref == head && prs[i].Base.Ref == base {
				return &prs[i], nil
			}
		}
		if len(prs) < 50 {
			break
		}
	}
	return nil, nil
}

// labelIDs finds (creating the missing ones) the ids of labels: Gitea takes ids, not names.
func (g *gitea) labelIDs(ctx context.Context, names []string) ([]int64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var have []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	if err := g.c.do(ctx, http.MethodGet, "/labels?limit=50", nil, &have); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(names))
	for _, n := range names {
		id := int64(0)
		for _, l := range have {
			if l.Name == n {
				id = l.ID
			}
		}
		if id == 0 {
			var made struct {
				ID int64 `json:"id"`
			}
			if err := g.c.do(ctx, http.MethodPost, "/labels", map[string]string{"name": n, "color": "#0e8a16"}, &made); err != nil {
				return nil, err
			}
			id = made.ID
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (g *gitea) Open(ctx context.Context, r Request) (PullRequest, error) {
	labels, err := g.labelIDs(ctx, r.Labels)
	if err != nil {
		return PullRequest{}, fmt.Errorf("labels: %w", err)
	}
	existing, err := g.find(ctx, r.Head, r.Base)
	if err != nil {
		return PullRequest{}, err
	}
	var pr giteaPR
	if existing != nil {
		body := map[string]any{"title": r.Title, "body": r.Body}
		if labels != nil {
			body["labels"] = labels
		}
		if err := g.c.do(ctx, http.MethodPatch, fmt.Sprintf("/pulls/%d", existing.Number), body, &pr); err != nil {
			return PullRequest{}, err
		}
		return pr.pr(), nil
	}
	body := map[string]any{"head": r.Head, "base": r.Base, "title": r.Title, "body": r.Body}
	if labels != nil {
		body["labels"] = labels
	}
	if err := g.c.do(ctx, http.MethodPost, "/pulls", body, &pr); err != nil {
		return PullRequest{}, err
	}
	if len(r.Reviewers) > 0 {
		if err := g.c.do(ctx, http.MethodPost, fmt.Sprintf("/pulls/%d/requested_reviewers", pr.Number), map[string]any{"reviewers": r.Reviewers}, nil); err != nil {
			return pr.pr(), fmt.Errorf("reviewers: %w", err)
		}
	}
	return pr.pr(), nil
}

func (g *gitea) Get(ctx context.Context, number int64) (PullRequest, error) {
	var pr giteaPR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls/%d", number), nil, &pr); err != nil {
		return PullRequest{}, err
	}
	return pr.pr(), nil
}

// AutoMerge schedules the merge for when the checks pass (Gitea merges at once when none are
// required).
func (g *gitea) AutoMerge(ctx context.Context, number int64) error {
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/pulls/%d/merge", number),
		map[string]any{"Do": "merge", "merge_when_checks_succeed": true}, nil)
}
