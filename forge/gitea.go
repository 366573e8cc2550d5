package forge

import (
	"context"
	"fmt"
	"net/http"
)

// gitea speaks Gitea's (and Forgejo's) API v1.
type gitea struct{ c *client }

// newGitea builds Gitea's client: its API defaults to /api/v1 on the repository's host.
func newGitea(c *client, at endpoint, _ WriteBack) (Forge, error) {
	api := at.api
	if api == "" {
		api = at.scheme + "://" + at.host + "/api/v1"
	}
	c.base, c.auth = api+"/repos/"+at.path, "token "+c.token
	return &gitea{c: c}, nil
}

type giteaPR struct {
	Number         int64       `json:"number"`
	HTMLURL        string      `json:"html_url"`
	State          string      `json:"state"`
	Merged         bool        `json:"merged"`
	MergeCommitSHA string      `json:"merge_commit_sha"`
	Head           giteaBranch `json:"head"`
	Base           giteaBranch `json:"base"`
}

// giteaBranch is one side of a pull request: the branch and the repository it lives in.
type giteaBranch struct {
	Ref    string `json:"ref"`
	Sha    string `json:"sha"`
	RepoID int64  `json:"repo_id"`
	Repo   *struct {
		ID       int64  `json:"id"`
		FullName string `json:"full_name"`
	} `json:"repo"`
}

// repoID is the branch's repository id, 0 when Gitea does not know it (a deleted fork).
func (b giteaBranch) repoID() int64 {
	if b.Repo != nil && b.Repo.ID != 0 {
		return b.Repo.ID
	}
	return b.RepoID
}

// fork reports whether the head branch is not in the base repository.
func (p giteaPR) fork() bool {
	return p.Head.repoID() == 0 || p.Head.repoID() != p.Base.repoID()
}

// lookAlike names a fork's pull request for an event's detail: "#3 from eve/apps".
func (p giteaPR) lookAlike() string {
	from := "a deleted repository"
	if p.Head.Repo != nil && p.Head.Repo.FullName != "" {
		from = p.Head.Repo.FullName
	}
	return fmt.Sprintf("#%d from %s", p.Number, from)
}

func (p giteaPR) pr() PullRequest {
	out := PullRequest{Number: p.Number, URL: p.HTMLURL, State: Open, Head: p.Head.Sha, Fork: p.fork()}
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

// find returns the open pull request from head to base whose head branch is in the repository
// itself, and the forks' pull requests with the same branch names (Gitea matches head.ref alone,
// whichever repository the branch lives in).
func (g *gitea) find(ctx context.Context, head, base string) (*giteaPR, []string, error) {
	var own *giteaPR
	var lookAlikes []string
	for page := 1; page <= maxPages; page++ {
		var prs []giteaPR
		if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls?state=open&limit=50&page=%d", page), nil, &prs); err != nil {
			return nil, nil, err
		}
		for i := range prs {
			switch {
			case prs[i].Head.Ref != head || prs[i].Base.Ref != base:
			case prs[i].fork():
				lookAlikes = append(lookAlikes, prs[i].lookAlike())
			case own == nil:
				own = &prs[i]
			}
		}
		if len(prs) < 50 {
			break
		}
	}
	return own, lookAlikes, nil
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
	existing, lookAlikes, err := g.find(ctx, r.Head, r.Base)
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
		return g.checked(pr, lookAlikes)
	}
	body := map[string]any{"head": r.Head, "base": r.Base, "title": r.Title, "body": r.Body}
	if labels != nil {
		body["labels"] = labels
	}
	if err := g.c.do(ctx, http.MethodPost, "/pulls", body, &pr); err != nil {
		return PullRequest{LookAlikes: lookAlikes}, err
	}
	out, err := g.checked(pr, lookAlikes)
	if err == nil && len(r.Reviewers) > 0 {
		if err := g.c.do(ctx, http.MethodPost, fmt.Sprintf("/pulls/%d/requested_reviewers", pr.Number), map[string]any{"reviewers": r.Reviewers}, nil); err != nil {
			return out, fmt.Errorf("reviewers: %w", err)
		}
	}
	return out, err
}

// checked refuses an answer about a pull request from another repository: Open must never hand
// one back as imagehook's.
func (g *gitea) checked(pr giteaPR, lookAlikes []string) (PullRequest, error) {
	out := pr.pr()
	out.LookAlikes = lookAlikes
	if out.Fork {
		return PullRequest{LookAlikes: append(lookAlikes, pr.lookAlike())}, fmt.Errorf("%w: pull request %s is not from this repository", ErrForeign, pr.lookAlike())
	}
	return out, nil
}

func (g *gitea) Get(ctx context.Context, number int64) (PullRequest, error) {
	var pr giteaPR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls/%d", number), nil, &pr); err != nil {
		return PullRequest{}, err
	}
	return pr.pr(), nil
}

// AutoMerge schedules the merge for when the checks pass (Gitea merges at once when none are
// required); head_commit_id makes Gitea refuse a merge of any other head.
func (g *gitea) AutoMerge(ctx context.Context, number int64, head string) error {
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/pulls/%d/merge", number),
		map[string]any{"Do": "merge", "merge_when_checks_succeed": true, "head_commit_id": head}, nil)
}

// CancelAutoMerge deletes the scheduled merge.
func (g *gitea) CancelAutoMerge(ctx context.Context, number int64) error {
	return g.c.do(ctx, http.MethodDelete, fmt.Sprintf("/pulls/%d/merge", number), nil, nil)
}

// Comment comments on the pull request (an issue, for comments).
func (g *gitea) Comment(ctx context.Context, number int64, body string) error {
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/issues/%d/comments", number), map[string]string{"body": body}, nil)
}
