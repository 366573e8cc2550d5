package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// codeup speaks Alibaba Cloud DevOps' (云效) OpenAPI for Codeup's change requests (合并请求), with a
// personal access token in the x-yunxiao-token header. The organization id and the repository
// come from config, or from the repository URL (codeup.aliyun.com/{organization}/{group…}/{name}:
// the repository is then named by its URL-encoded full path, which the API takes wherever it takes
// an id). The repository's numeric id, which change requests name their source and target by, is
// read once.
//
// Codeup has no "merge when the checks pass" and no labels on change requests: AutoMerge merges
// at once, after reading that the change request still ends in the head imagehook pushed, and
// labels are refused with an error that the event shows (the change request is open all the same).
type codeup struct {
	c *client
	// repo is the repository in request paths: its id, or its URL-encoded full path.
	repo string

	mu sync.Mutex
	// id is the repository's numeric id (0 until read).
	id int64
}

// ErrUnsupported says a forge lacks what was asked (Codeup's change requests have no labels).
var ErrUnsupported = errors.New("not offered by this forge")

// buildCodeup builds Codeup's client from writeBack.codeup and the repository's path.
func buildCodeup(c *client, at endpoint, w WriteBack) (Forge, error) {
	return newCodeup(c, at.api, at.path, w.Codeup.OrganizationID, w.Codeup.RepositoryID)
}

func newCodeup(c *client, api, path, org, repo string) (*codeup, error) {
	if api == "" {
		api = "https://openapi-rdc.aliyuncs.com"
	}
	if org == "" {
		org, _, _ = strings.Cut(path, "/")
	}
	if repo == "" {
		repo = url.PathEscape(path)
	} else if strings.Contains(repo, "/") {
		repo = url.PathEscape(repo)
	}
	if org == "" || repo == "" {
		return nil, errors.New("codeup: organization and repository unknown")
	}
	c.base, c.header = api+"/oapi/v1/codeup/organizations/"+url.PathEscape(org), "x-yunxiao-token"
	return &codeup{c: c, repo: repo}, nil
}

type codeupCR struct {
	LocalID         int64  `json:"localId"`
	WebURL          string `json:"webUrl"`
	DetailURL       string `json:"detailUrl"`
	SourceBranch    string `json:"sourceBranch"`
	TargetBranch    string `json:"targetBranch"`
	SourceProjectID int64  `json:"sourceProjectId"`
	TargetProjectID int64  `json:"targetProjectId"`
	ProjectID       int64  `json:"projectId"`
	// Status (GetChangeRequest) and State (ListChangeRequests) are one field spelled twice:
	// UNDER_DEV, UNDER_REVIEW, TO_BE_MERGED, CLOSED or MERGED.
	Status         string `json:"status"`
	State          string `json:"state"`
	MergedRevision string `json:"mergedRevision"`
}

func (m codeupCR) state() string {
	if m.Status != "" {
		return m.Status
	}
	return m.State
}

// fork reports whether the source branch lives in another repository than the target.
func (m codeupCR) fork() bool {
	target := m.TargetProjectID
	if target == 0 {
		target = m.ProjectID
	}
	return m.SourceProjectID == 0 || m.SourceProjectID != target
}

func (m codeupCR) lookAlike() string {
	return fmt.Sprintf("!%d from repository %d", m.LocalID, m.SourceProjectID)
}

func (m codeupCR) pr() PullRequest {
	out := PullRequest{Number: m.LocalID, URL: m.WebURL, State: Open, Fork: m.fork()}
	if out.URL == "" {
		out.URL = m.DetailURL
	}
	switch m.state() {
	case "MERGED":
		out.State, out.MergeCommit = Merged, m.MergedRevision
	case "CLOSED":
		out.State = Closed
	}
	return out
}

// projectID reads the repository's numeric id once.
func (g *codeup) projectID(ctx context.Context) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.id != 0 {
		return g.id, nil
	}
	var repo struct {
		ID int64 `json:"id"`
	}
	if err := g.c.do(ctx, http.MethodGet, "/repositories/"+g.repo, nil, &repo); err != nil {
		return 0, err
	}
	if repo.ID == 0 {
		return 0, fmt.Errorf("%w: repository %s: no id in the answer", ErrForge, g.repo)
	}
	g.id = repo.ID
	return g.id, nil
}

// maxCodeupPages bounds the listing of open change requests (100 each).
const maxCodeupPages = 10

func (g *codeup) Open(ctx context.Context, r Request) (PullRequest, error) {
	id, err := g.projectID(ctx)
	if err != nil {
		return PullRequest{}, err
	}
	var own *codeupCR
	var lookAlikes []string
	for page := 1; page <= maxCodeupPages; page++ {
		q := url.Values{"projectIds": {fmt.Sprint(id)}, "state": {"opened"}, "page": {fmt.Sprint(page)}, "perPage": {"100"}}
		var crs []codeupCR
		if err := g.c.do(ctx, http.MethodGet, "/changeRequests?"+q.Encode(), nil, &crs); err != nil {
			return PullRequest{}, err
		}
		for i := range crs {
			switch {
			case crs[i].SourceBranch != r.Head || crs[i].TargetBranch != r.Base:
			case crs[i].fork():
				lookAlikes = append(lookAlikes, crs[i].lookAlike())
			case own == nil:
				own = &crs[i]
			}
		}
		if len(crs) < 100 {
			break
		}
	}
	var number int64
	if own != nil {
		number = own.LocalID
		var ok struct {
			Result bool `json:"result"`
		}
		if err := g.c.do(ctx, http.MethodPut, fmt.Sprintf("/repositories/%s/changeRequests/%d", g.repo, number),
			map[string]any{"title": r.Title, "description": r.Body}, &ok); err != nil {
			return PullRequest{}, err
		}
	} else {
		body := map[string]any{"title": r.Title, "description": r.Body, "sourceBranch": r.Head, "targetBranch": r.Base,
			"sourceProjectId": id, "targetProjectId": id, "createFrom": "WEB"}
		if len(r.Reviewers) > 0 {
			// Codeup takes Yunxiao user ids.
			body["reviewerUserIds"] = r.Reviewers
		}
		var made codeupCR
		if err := g.c.do(ctx, http.MethodPost, "/repositories/"+g.repo+"/changeRequests", body, &made); err != nil {
			return PullRequest{LookAlikes: lookAlikes}, err
		}
		number = made.LocalID
	}
	cr, err := g.read(ctx, number)
	if err != nil {
		return PullRequest{Number: number, LookAlikes: lookAlikes}, err
	}
	out := cr
	out.LookAlikes = lookAlikes
	if out.Fork {
		return PullRequest{LookAlikes: append(lookAlikes, fmt.Sprintf("!%d from another repository", number))},
			fmt.Errorf("%w: change request !%d is not from this repository", ErrForeign, number)
	}
	if len(r.Labels) > 0 {
		return out, fmt.Errorf("labels %s not set: %w (Codeup change requests have no labels)", strings.Join(r.Labels, ", "), ErrUnsupported)
	}
	return out, nil
}

func (g *codeup) Get(ctx context.Context, number int64) (PullRequest, error) {
	return g.read(ctx, number)
}

// read reads a change request and the head of its source.
func (g *codeup) read(ctx context.Context, number int64) (PullRequest, error) {
	var cr codeupCR
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/repositories/%s/changeRequests/%d", g.repo, number), nil, &cr); err != nil {
		return PullRequest{}, err
	}
	out := cr.pr()
	head, _, err := g.source(ctx, number)
	if err != nil {
		return PullRequest{}, err
	}
	out.Head = head
	if out.State == Merged && out.MergeCommit == "" {
		return PullRequest{}, fmt.Errorf("%w: change request !%d is merged but names no mergedRevision", ErrForge, number)
	}
	return out, nil
}

// source returns the change request's latest source patch set: its commit (the head, which
// Codeup keeps after the branch is deleted) and its id (which a comment is attached to).
func (g *codeup) source(ctx context.Context, number int64) (commit, id string, err error) {
	var sets []struct {
		ID       string `json:"patchSetBizId"`
		CommitID string `json:"commitId"`
		Type     string `json:"relatedMergeItemType"`
		Version  int64  `json:"versionNo"`
	}
	if err := g.c.do(ctx, http.MethodGet, fmt.Sprintf("/repositories/%s/changeRequests/%d/diffs/patches", g.repo, number), nil, &sets); err != nil {
		return "", "", err
	}
	best := int64(-1)
	for _, s := range sets {
		if s.Type == "MERGE_SOURCE" && s.Version > best && s.CommitID != "" {
			commit, id, best = s.CommitID, s.ID, s.Version
		}
	}
	if commit == "" {
		return "", "", fmt.Errorf("%w: change request !%d has no source version", ErrForge, number)
	}
	return commit, id, nil
}

// AutoMerge merges now (Codeup schedules no merge), only while the change request ends in head.
func (g *codeup) AutoMerge(ctx context.Context, number int64, head string) error {
	got, _, err := g.source(ctx, number)
	if err != nil {
		return err
	}
	if got != head {
		return fmt.Errorf("%w: change request !%d ends in %.12s, not %.12s: not merged", ErrForge, number, got, head)
	}
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/repositories/%s/changeRequests/%d/merge", g.repo, number),
		map[string]any{"mergeType": "no-fast-forward", "mergeMessage": "", "removeSourceBranch": false}, nil)
}

// CancelAutoMerge has nothing to withdraw: Codeup schedules no merge, AutoMerge merged or was
// refused at once.
func (g *codeup) CancelAutoMerge(ctx context.Context, number int64) error { return nil }

// Comment adds a comment on the whole change request, attached to its latest version.
func (g *codeup) Comment(ctx context.Context, number int64, body string) error {
	_, set, err := g.source(ctx, number)
	if err != nil {
		return err
	}
	return g.c.do(ctx, http.MethodPost, fmt.Sprintf("/repositories/%s/changeRequests/%d/comments", g.repo, number),
		map[string]any{"comment_type": "GLOBAL_COMMENT", "content": body, "draft": false, "resolved": false, "patchset_biz_id": set}, nil)
}
