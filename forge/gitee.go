package forge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// gitee speaks Gitee's OpenAPI v5 (gitee.com, and Gitee Enterprise with api:). Its personal access
// token travels as the access_token parameter: in the JSON body of every write, and in the query
// of a read (the API takes it nowhere else), added where the request is sent so that no URL
// imagehook keeps, logs or reports holds it.
//
// Gitee has no "merge when the checks pass": AutoMerge merges at once, after reading that the
// pull request still ends in the head imagehook pushed; Gitee refuses while the reviews or tests
// the repository requires are missing, and the refusal is said on the event.
type gitee struct {
	c *client
	// repo is owner/name: a pull request whose head.repo.full_name differs is from a fork.
	repo string
	// merged remembers the commit of each merge imagehook made (Gitee's merge answer names it;
	// its pull request does not).
	mu     sync.Mutex
	merged map[int64]string
}

// newGitee builds Gitee's client: its API defaults to gitee.com's for gitee.com, and to /api/v5
// on the repository's host for Gitee Enterprise.
func newGitee(c *client, at endpoint, _ WriteBack) (Forge, error) {
	api := at.api
	if api == "" {
		if at.host == "gitee.com" {
			api = "https://gitee.com/api/v5"
		} else {
			api = at.scheme + "://" + at.host + "/api/v5"
		}
	}
	c.base, c.param = api+"/repos/"+at.path, "access_token"
	return &gitee{c: c, repo: at.path, merged: map[int64]string{}}, nil
}

type giteePR struct {
	Number   int64  `json:"number"`
	HTMLURL  string `json:"html_url"`
	State    string `json:"state"`
	MergedAt string `json:"merged_at"`
	// MergeCommitSHA is read when a Gitee version sends it; the documented pull request has none.
	MergeCommitSHA string      `json:"merge_commit_sha"`
	Mergeable      *bool       `json:"mergeable"`
	Head           giteeBranch `json:"head"`
	Base           giteeBranch `json:"base"`
}

type giteeBranch struct {
	Ref  string `json:"ref"`
	Sha  string `json:"sha"`
	Repo *struct {
		FullName string `json:"full_name"`
	} `json:"repo"`
}

// fork reports whether the head branch lives outside repo (a fork, or a deleted one).
func (p giteePR) fork(repo string) bool {
	return p.Head.Repo == nil || !strings.EqualFold(p.Head.Repo.FullName, repo)
}

func (p giteePR) lookAlike() string {
	from := "a deleted repository"
	if p.Head.Repo != nil && p.Head.Repo.FullName != "" {
		from = p.Head.Repo.FullName
	}
	return fmt.Sprintf("!%d from %s", p.Number, from)
}

func (g *gitee) out(p giteePR) PullRequest {
	out := PullRequest{Number: p.Number, URL: p.HTMLURL, State: Open, Head: p.Head.Sha, Fork: p.fork(g.repo)}
	switch {
	case p.State == "merged" || p.MergedAt != "":
		out.State, out.MergeCommit = Merged, p.MergeCommitSHA
	case p.State == "closed":
		out.State = Closed
	}
	return out
}

// maxGiteePages bounds the listing of open pull requests (100 each, Gitee's most).
const maxGiteePages = 10

func (g *gitee) Open(ctx context.Context, r Request) (PullRequest, error) {
	var own *giteePR
	var lookAlikes []string
	for page := 1; page <= maxGiteePages; page++ {
		q := url.Values{"state": {"open"}, "head": {r.Head}, "base": {r.Base}, "per_page": {"100"}, "page": {fmt.Sprint(page)}}
		var prs []giteePR
		if err := g.c.do(ctx, http.MethodGet, "/pulls?"+q.Encode(), nil, &prs); err != nil {
			return PullRequest{}, err
		}
		for i := range prs {
			switch {
			// The head filter takes a bare branch name: forks' branches of that name match it.
			case prs[i].Head.Ref != r.Head || prs[i].Base.Ref != r.Base:
			case prs[i].fork(g.repo):
				lookAlikes = append(lookAlikes, prs[i].lookAlike())
			case own == nil:
				own = &prs[i]
			}
		}
		if len(prs) < 100 {
			break
		}
	}
	body := map[string]any{"title": r.Title, "body": r.Body}
	if len(r.Labels) > 0 {
		body["labels"] = strings.Join(r.Labels, ",")
	}
	var pr giteePR
	if own != nil {
		if err := g.c.do(ctx, http.MethodPatch, fmt.Sprintf("/pulls/%d", own.Number), body, &pr); err != nil {
			return PullRequest{}, err
		}
	} else {
		body["head"], body["base"] = r.Head, r.Base
		if len(r.Reviewers) > 0 {
			// Gitee's reviewers are the pull request's assignees (审查人员), by user name.
			body["assignees"] = strings.Join(r.Reviewers, ",")
		}
		if err := g.c.do(ctx, http.MethodPost, "/pulls", body, &pr); err != nil {
			return PullRequest{LookAlikes: lookAlikes}, err
		}
	}
	out := g.out(pr)
	out.LookAlikes = lookAlikes
	if out.Fork {
		return PullRequest{LookAlikes: append(lookAlikes, pr.lookAlike())}, fmt.Errorf("%w: pull request %s is not from this repository", ErrForeign, pr.lookAlike())
	}
	return out, nil
}

func (g *gitee) Get(ctx context.Context, number int64) (PullRequest, error) {
	var pr giteePR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls/%d", number), nil, &pr); err != nil {
		return PullRequest{}, err
	}
	out := g.out(pr)
	if out.State == Merged && out.MergeCommit == "" {
		commit, err := g.mergeCommit(ctx, pr)
		if err != nil {
			return PullRequest{}, fmt.Errorf("pull request !%d is merged; its merge commit: %w", number, err)
		}
		out.MergeCommit = commit
	}
	return out, nil
}

// mergeCommit finds the commit a merge made on the base branch: the one imagehook's own merge
// was answered with, else among the base branch's latest commits the merge commit whose parents
// hold the head, the head itself (a fast-forward), or — a squash keeps neither — the commit whose
// message Gitee wrote for this pull request ("!N title", "Merge pull request !N from …"). The
// updater reads what that commit holds before completing anything. None found is an error, and
// the pull request is read again later.
func (g *gitee) mergeCommit(ctx context.Context, pr giteePR) (string, error) {
	g.mu.Lock()
	sha := g.merged[pr.Number]
	g.mu.Unlock()
	if sha != "" {
		return sha, nil
	}
	q := url.Values{"sha": {pr.Base.Ref}, "per_page": {"100"}}
	var commits []struct {
		Sha     string `json:"sha"`
		Parents []struct {
			Sha string `json:"sha"`
		} `json:"parents"`
		Commit struct {
			Message string `json:"message"`
		} `json:"commit"`
	}
	if err := g.c.do(ctx, http.MethodGet, "/commits?"+q.Encode(), nil, &commits); err != nil {
		return "", err
	}
	for _, c := range commits {
		if c.Sha == pr.Head.Sha {
			return c.Sha, nil
		}
		for _, p := range c.Parents {
			if p.Sha == pr.Head.Sha && len(c.Parents) > 1 {
				return c.Sha, nil
			}
		}
	}
	ref := fmt.Sprintf("!%d", pr.Number)
	for _, c := range commits {
		if msg := c.Commit.Message; strings.HasPrefix(msg, ref+" ") || strings.Contains(msg, "pull request "+ref+" ") {
			return c.Sha, nil
		}
	}
	return "", fmt.Errorf("%w: none of %s's latest %d commits merged head %.12s", ErrForge, pr.Base.Ref, len(commits), pr.Head.Sha)
}

// AutoMerge merges now (Gitee schedules no merge), only while the pull request ends in head.
func (g *gitee) AutoMerge(ctx context.Context, number int64, head string) error {
	var pr giteePR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/pulls/%d", number), nil, &pr); err != nil {
		return err
	}
	if pr.Head.Sha != head {
		return fmt.Errorf("%w: pull request !%d ends in %.12s, not %.12s: not merged", ErrForge, number, pr.Head.Sha, head)
	}
	if pr.Mergeable != nil && !*pr.Mergeable {
		return fmt.Errorf("%w: pull request !%d cannot be merged yet (Gitee says not mergeable: conflicts, or required reviews and tests missing); merge it on Gitee", ErrForge, number)
	}
	var out struct {
		Sha    string `json:"sha"`
		Merged bool   `json:"merged"`
	}
	if err := g.c.do(ctx, http.MethodPut, fmt.Sprintf("/pulls/%d/merge", number), map[string]any{"merge_method": "merge"}, &out); err != nil {
		return err
	}
	if out.Sha != "" {
		g.mu.Lock()
		g.merged[number] = out.Sha
		g.mu.Unlock()
	}
	return nil
}

// CancelAutoMerge has nothing to withdraw: Gitee schedules no merge, AutoMerge merged or was
// refused at once.
func (g *gitee) CancelAutoMerge(ctx context.Context, number int64) error { return nil }

// Comment comments on the pull request.
func (g *gitee) Comment(ctx context.Context, number int64, body string) error {
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/pulls/%d/comments", number), map[string]any{"body": body}, nil)
}
