package forgetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Codeup plays Alibaba Cloud DevOps' (云效) OpenAPI for Codeup change requests as its reference
// documents it (Codeup cannot be reached from here): the x-yunxiao-token header on every request,
// /oapi/v1/codeup/organizations/{organizationId}/… paths with the repository named by its id or
// its URL-encoded full path, the documented body fields and their types (others refused), and
// answers shaped like Codeup's (status UNDER_REVIEW/MERGED/CLOSED, mergedRevision, patch sets with
// their commits). Change requests are kept as state.
type Codeup struct {
	// Token is the personal access token the API accepts (x-yunxiao-token).
	Token string
	// Org is the organization id, Path the repository's full path, ID its numeric id.
	Org, Path string
	ID        int64
	// Branch, when set, reads a branch's head from a real repository: a change request gains a
	// source version when its branch moves, as Codeup's do; Merge then merges there and returns
	// the merge commit.
	Branch func(name string) string
	Merge  func(source, target string) (string, error)

	// Mu guards what follows, which tests may read and set.
	Mu    sync.Mutex
	CRs   map[int64]*CodeupCR
	Next  int64
	Heads map[string]string // branch → sha, without Branch
	Calls []string
	// Comments holds each comment's patch set.
	Comments []string
}

// CodeupCR is one change request the server keeps.
type CodeupCR struct {
	LocalID            int64
	Source, Target     string
	SourceID           int64
	Title, Description string
	Reviewers          []any
	Status, Merged     string
	Patches            []string // commit of each source version, oldest first
	Mergeable          bool
}

// NewCodeup returns a server for the repository org/path (numeric id id) accepting token.
func NewCodeup(token, org, path string, id int64) *Codeup {
	return &Codeup{Token: token, Org: org, Path: path, ID: id, CRs: map[int64]*CodeupCR{}, Next: 1, Heads: map[string]string{}}
}

// head is a branch's head.
func (c *Codeup) head(branch string) string {
	if c.Branch != nil {
		return c.Branch(branch)
	}
	return c.Heads[branch]
}

// sync gives an open change request from the repository a new source version when its branch
// moved.
func (c *Codeup) sync(p *CodeupCR) {
	if c.Branch == nil || p.SourceID != c.ID || p.Status == "MERGED" || p.Status == "CLOSED" {
		return
	}
	if h := c.Branch(p.Source); h != "" && (len(p.Patches) == 0 || p.Patches[len(p.Patches)-1] != h) {
		p.Patches = append(p.Patches, h)
	}
}

// ServeHTTP answers as Codeup's OpenAPI does.
func (c *Codeup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	write := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	refuse := func(code int, msg string) {
		write(code, map[string]string{"errorCode": "Openapi.RequestError", "errorMessage": msg})
	}
	if r.Header.Get("x-yunxiao-token") != c.Token {
		refuse(http.StatusUnauthorized, "invalid token")
		return
	}
	if r.URL.Query().Has("access_token") || r.Header.Get("Authorization") != "" {
		refuse(http.StatusBadRequest, "contract: the token travels in x-yunxiao-token only")
		return
	}
	codeupPath := regexp.MustCompile(`^/oapi/v1/codeup/organizations/` + regexp.QuoteMeta(c.Org) + `/(?:changeRequests|repositories/([^/]+)(/changeRequests(?:/(\d+)(/merge|/comments|/diffs/patches)?)?)?)$`)
	m := codeupPath.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil {
		refuse(http.StatusNotFound, "not found: "+r.URL.EscapedPath())
		return
	}
	if m[1] != "" && m[1] != strconv.FormatInt(c.ID, 10) && m[1] != url.PathEscape(c.Org+"/"+c.Path) {
		refuse(http.StatusNotFound, "repository not found")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if r.Method != http.MethodGet && len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		refuse(http.StatusBadRequest, "contract: a JSON body")
		return
	}
	// fields refuses undocumented fields and checks the documented types.
	fields := func(types map[string]string) bool {
		for k, v := range body {
			want, ok := types[k]
			if !ok {
				refuse(http.StatusBadRequest, "contract: undocumented field "+k)
				return false
			}
			okType := false
			switch v.(type) {
			case string:
				okType = want == "string"
			case float64:
				okType = want == "integer" && v.(float64) == float64(int64(v.(float64)))
			case bool:
				okType = want == "boolean"
			case []any:
				okType = want == "array"
			}
			if !okType {
				refuse(http.StatusBadRequest, "contract: "+k+" is "+want)
				return false
			}
		}
		return true
	}
	number, _ := strconv.ParseInt(m[3], 10, 64)
	key := r.Method + " "
	switch {
	case m[1] == "":
		key += "changeRequests"
	case m[2] == "":
		key += "repository"
	case number == 0:
		key += "repository/changeRequests"
	default:
		key += "repository/changeRequests/N" + m[4]
	}
	c.Calls = append(c.Calls, key)
	cr := c.CRs[number]
	if number != 0 && cr == nil {
		refuse(http.StatusNotFound, "change request not found")
		return
	}
	if cr != nil {
		c.sync(cr)
	}
	switch key {
	case "GET repository":
		write(http.StatusOK, map[string]any{"id": c.ID, "name": path.Base(c.Path), "pathWithNamespace": c.Org + "/" + c.Path})
	case "GET changeRequests":
		q := r.URL.Query()
		if q.Get("projectIds") == "" {
			refuse(http.StatusBadRequest, "contract: imagehook lists its repository's change requests only")
			return
		}
		var out []any
		for i := int64(1); i < c.Next; i++ {
			p := c.CRs[i]
			c.sync(p)
			if q.Get("state") != "opened" || (p.Status != "MERGED" && p.Status != "CLOSED") {
				item := c.json(p)
				item["state"] = item["status"] // ListChangeRequests names it state
				delete(item, "status")
				out = append(out, item)
			}
		}
		write(http.StatusOK, out)
	case "POST repository/changeRequests":
		if !fields(map[string]string{"title": "string", "description": "string", "sourceBranch": "string", "targetBranch": "string",
			"sourceProjectId": "integer", "targetProjectId": "integer", "reviewerUserIds": "array", "workItemIds": "array",
			"createFrom": "string", "triggerAIReviewRun": "boolean"}) {
			return
		}
		for _, k := range []string{"title", "sourceBranch", "targetBranch", "sourceProjectId", "targetProjectId"} {
			if body[k] == nil {
				refuse(http.StatusBadRequest, k+" is required")
				return
			}
		}
		if len([]rune(str(body["title"]))) > 256 || len([]rune(str(body["description"]))) > 10000 {
			refuse(http.StatusBadRequest, "title is at most 256 characters, description 10000")
			return
		}
		p := &CodeupCR{LocalID: c.Next, Source: str(body["sourceBranch"]), Target: str(body["targetBranch"]), SourceID: int64(body["sourceProjectId"].(float64)),
			Title: str(body["title"]), Description: str(body["description"]), Status: "UNDER_REVIEW", Patches: []string{c.head(str(body["sourceBranch"]))}, Mergeable: true}
		p.Reviewers, _ = body["reviewerUserIds"].([]any)
		c.CRs[p.LocalID] = p
		c.Next++
		write(http.StatusOK, c.json(p))
	case "PUT repository/changeRequests/N":
		if !fields(map[string]string{"title": "string", "description": "string"}) {
			return
		}
		cr.Title, cr.Description = str(body["title"]), str(body["description"])
		write(http.StatusOK, map[string]any{"result": true})
	case "GET repository/changeRequests/N":
		write(http.StatusOK, c.json(cr))
	case "GET repository/changeRequests/N/diffs/patches":
		var out []any
		out = append(out, map[string]any{"patchSetBizId": "target-1", "commitId": "base", "relatedMergeItemType": "MERGE_TARGET", "versionNo": 1})
		for i, sha := range cr.Patches {
			out = append(out, map[string]any{"patchSetBizId": fmt.Sprintf("src-%d", i+1), "commitId": sha, "relatedMergeItemType": "MERGE_SOURCE", "versionNo": i + 1})
		}
		write(http.StatusOK, out)
	case "POST repository/changeRequests/N/merge":
		if !fields(map[string]string{"mergeMessage": "string", "mergeType": "string", "removeSourceBranch": "boolean"}) {
			return
		}
		if mt := str(body["mergeType"]); mt != "ff-only" && mt != "no-fast-forward" && mt != "squash" && mt != "rebase" {
			refuse(http.StatusBadRequest, "mergeType is ff-only, no-fast-forward, squash or rebase")
			return
		}
		if !cr.Mergeable {
			refuse(http.StatusBadRequest, "合并请求未满足合并条件")
			return
		}
		sha := fmt.Sprintf("m%039d", cr.LocalID)
		if c.Merge != nil {
			var err error
			if sha, err = c.Merge(cr.Source, cr.Target); err != nil {
				refuse(http.StatusInternalServerError, "merge: "+err.Error())
				return
			}
		}
		cr.Status, cr.Merged = "MERGED", sha
		write(http.StatusOK, c.json(cr))
	case "POST repository/changeRequests/N/comments":
		if !fields(map[string]string{"comment_type": "string", "content": "string", "draft": "boolean", "resolved": "boolean", "patchset_biz_id": "string",
			"file_path": "string", "line_number": "integer", "from_patchset_biz_id": "string", "to_patchset_biz_id": "string", "parent_comment_biz_id": "string"}) {
			return
		}
		set := str(body["patchset_biz_id"])
		if str(body["comment_type"]) != "GLOBAL_COMMENT" || str(body["content"]) == "" || body["draft"] == nil || body["resolved"] == nil || !strings.HasPrefix(set, "src-") {
			refuse(http.StatusBadRequest, "comment_type, content, draft, resolved and patchset_biz_id are required")
			return
		}
		c.Comments = append(c.Comments, set)
		write(http.StatusOK, map[string]any{"comment_biz_id": "c1", "content": body["content"]})
	default:
		refuse(http.StatusNotFound, "not found")
	}
}

// json is a change request as GetChangeRequest answers it.
func (c *Codeup) json(p *CodeupCR) map[string]any {
	return map[string]any{"localId": p.LocalID, "projectId": c.ID, "sourceProjectId": p.SourceID, "targetProjectId": c.ID,
		"sourceBranch": p.Source, "targetBranch": p.Target, "title": p.Title, "description": p.Description, "status": p.Status,
		"mergedRevision": p.Merged, "webUrl": fmt.Sprintf("https://codeup.aliyun.com/%s/%s/change/%d", c.Org, c.Path, p.LocalID),
		"createFrom": "WEB", "sourceCommitId": ""}
}
