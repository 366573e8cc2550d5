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
	call := &codeupCall{w: w, r: r}
	if r.Header.Get("x-yunxiao-token") != c.Token {
		call.refuse(http.StatusUnauthorized, "invalid token")
		return
	}
	if r.URL.Query().Has("access_token") || r.Header.Get("Authorization") != "" {
		call.refuse(http.StatusBadRequest, "contract: the token travels in x-yunxiao-token only")
		return
	}
	key, number, ok := c.route(call)
	if !ok {
		return
	}
	c.Calls = append(c.Calls, key)
	call.cr = c.CRs[number]
	if number != 0 && call.cr == nil {
		call.refuse(http.StatusNotFound, "change request not found")
		return
	}
	if call.cr != nil {
		c.sync(call.cr)
	}
	handle := codeupRoutes[key]
	if handle == nil {
		call.refuse(http.StatusNotFound, "not found")
		return
	}
	handle(c, call)
}

// route reads the request's path and body: the route's key ("METHOD changeRequests",
// "METHOD repository…/N…") and the change request's number; it answers and returns false when
// the path or body is refused.
func (c *Codeup) route(call *codeupCall) (string, int64, bool) {
	r := call.r
	codeupPath := regexp.MustCompile(`^/oapi/v1/codeup/organizations/` + regexp.QuoteMeta(c.Org) + `/(?:changeRequests|repositories/([^/]+)(/changeRequests(?:/(\d+)(/merge|/comments|/diffs/patches)?)?)?)$`)
	m := codeupPath.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil {
		call.refuse(http.StatusNotFound, "not found: "+r.URL.EscapedPath())
		return "", 0, false
	}
	if m[1] != "" && m[1] != strconv.FormatInt(c.ID, 10) && m[1] != url.PathEscape(c.Org+"/"+c.Path) {
		call.refuse(http.StatusNotFound, "repository not found")
		return "", 0, false
	}
	raw, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodGet && len(raw) > 0 && json.Unmarshal(raw, &call.body) != nil {
		call.refuse(http.StatusBadRequest, "contract: a JSON body")
		return "", 0, false
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
	return key, number, true
}

// codeupCall is one request the Codeup server answers: its JSON body and the change request its
// path names.
type codeupCall struct {
	w    http.ResponseWriter
	r    *http.Request
	body map[string]any
	cr   *CodeupCR
}

func (call *codeupCall) write(code int, v any) {
	call.w.Header().Set("Content-Type", "application/json")
	call.w.WriteHeader(code)
	_ = json.NewEncoder(call.w).Encode(v)
}

func (call *codeupCall) refuse(code int, msg string) {
	call.write(code, map[string]string{"errorCode": "Openapi.RequestError", "errorMessage": msg})
}

// fields refuses undocumented fields and checks the documented types.
func (call *codeupCall) fields(types map[string]string) bool {
	for k, v := range call.body {
		want, ok := types[k]
		if !ok {
			call.refuse(http.StatusBadRequest, "contract: undocumented field "+k)
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
			call.refuse(http.StatusBadRequest, "contract: "+k+" is "+want)
			return false
		}
	}
	return true
}

// codeupRoutes are the endpoints the server plays, by method and route.
var codeupRoutes = map[string]func(*Codeup, *codeupCall){
	"GET repository": func(c *Codeup, call *codeupCall) {
		call.write(http.StatusOK, map[string]any{"id": c.ID, "name": path.Base(c.Path), "pathWithNamespace": c.Org + "/" + c.Path})
	},
	"GET changeRequests":                            (*Codeup).listCRs,
	"POST repository/changeRequests":                (*Codeup).openCR,
	"PUT repository/changeRequests/N":               (*Codeup).updateCR,
	"GET repository/changeRequests/N":               func(c *Codeup, call *codeupCall) { call.write(http.StatusOK, c.json(call.cr)) },
	"GET repository/changeRequests/N/diffs/patches": (*Codeup).patches,
	"POST repository/changeRequests/N/merge":        (*Codeup).mergeCR,
	"POST repository/changeRequests/N/comments":     (*Codeup).comment,
}

func (c *Codeup) listCRs(call *codeupCall) {
	q := call.r.URL.Query()
	if q.Get("projectIds") == "" {
		call.refuse(http.StatusBadRequest, "contract: imagehook lists its repository's change requests only")
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
	call.write(http.StatusOK, out)
}

func (c *Codeup) openCR(call *codeupCall) {
	body := call.body
	if !call.fields(map[string]string{"title": "string", "description": "string", "sourceBranch": "string", "targetBranch": "string",
		"sourceProjectId": "integer", "targetProjectId": "integer", "reviewerUserIds": "array", "workItemIds": "array",
		"createFrom": "string", "triggerAIReviewRun": "boolean"}) {
		return
	}
	for _, k := range []string{"title", "sourceBranch", "targetBranch", "sourceProjectId", "targetProjectId"} {
		if body[k] == nil {
			call.refuse(http.StatusBadRequest, k+" is required")
			return
		}
	}
	if len([]rune(str(body["title"]))) > 256 || len([]rune(str(body["description"]))) > 10000 {
		call.refuse(http.StatusBadRequest, "title is at most 256 characters, description 10000")
		return
	}
	p := &CodeupCR{LocalID: c.Next, Source: str(body["sourceBranch"]), Target: str(body["targetBranch"]), SourceID: int64(body["sourceProjectId"].(float64)),
		Title: str(body["title"]), Description: str(body["description"]), Status: "UNDER_REVIEW", Patches: []string{c.head(str(body["sourceBranch"]))}, Mergeable: true}
	p.Reviewers, _ = body["reviewerUserIds"].([]any)
	c.CRs[p.LocalID] = p
	c.Next++
	call.write(http.StatusOK, c.json(p))
}

func (c *Codeup) updateCR(call *codeupCall) {
	if !call.fields(map[string]string{"title": "string", "description": "string"}) {
		return
	}
	call.cr.Title, call.cr.Description = str(call.body["title"]), str(call.body["description"])
	call.write(http.StatusOK, map[string]any{"result": true})
}

func (c *Codeup) patches(call *codeupCall) {
	var out []any
	out = append(out, map[string]any{"patchSetBizId": "target-1", "commitId": "base", "relatedMergeItemType": "MERGE_TARGET", "versionNo": 1})
	for i, sha := range call.cr.Patches {
		out = append(out, map[string]any{"patchSetBizId": fmt.Sprintf("src-%d", i+1), "commitId": sha, "relatedMergeItemType": "MERGE_SOURCE", "versionNo": i + 1})
	}
	call.write(http.StatusOK, out)
}

func (c *Codeup) mergeCR(call *codeupCall) {
	if !call.fields(map[string]string{"mergeMessage": "string", "mergeType": "string", "removeSourceBranch": "boolean"}) {
		return
	}
	cr := call.cr
	if mt := str(call.body["mergeType"]); mt != "ff-only" && mt != "no-fast-forward" && mt != "squash" && mt != "rebase" {
		call.refuse(http.StatusBadRequest, "mergeType is ff-only, no-fast-forward, squash or rebase")
		return
	}
	if !cr.Mergeable {
		call.refuse(http.StatusBadRequest, "合并请求未满足合并条件")
		return
	}
	sha := fmt.Sprintf("m%039d", cr.LocalID)
	if c.Merge != nil {
		var err error
		if sha, err = c.Merge(cr.Source, cr.Target); err != nil {
			call.refuse(http.StatusInternalServerError, "merge: "+err.Error())
			return
		}
	}
	cr.Status, cr.Merged = "MERGED", sha
	call.write(http.StatusOK, c.json(cr))
}

func (c *Codeup) comment(call *codeupCall) {
	body := call.body
	if !call.fields(map[string]string{"comment_type": "string", "content": "string", "draft": "boolean", "resolved": "boolean", "patchset_biz_id": "string",
		"file_path": "string", "line_number": "integer", "from_patchset_biz_id": "string", "to_patchset_biz_id": "string", "parent_comment_biz_id": "string"}) {
		return
	}
	set := str(body["patchset_biz_id"])
	if str(body["comment_type"]) != "GLOBAL_COMMENT" || str(body["content"]) == "" || body["draft"] == nil || body["resolved"] == nil || !strings.HasPrefix(set, "src-") {
		call.refuse(http.StatusBadRequest, "comment_type, content, draft, resolved and patchset_biz_id are required")
		return
	}
	c.Comments = append(c.Comments, set)
	call.write(http.StatusOK, map[string]any{"comment_biz_id": "c1", "content": body["content"]})
}

// json is a change request as GetChangeRequest answers it.
func (c *Codeup) json(p *CodeupCR) map[string]any {
	return map[string]any{"localId": p.LocalID, "projectId": c.ID, "sourceProjectId": p.SourceID, "targetProjectId": c.ID,
		"sourceBranch": p.Source, "targetBranch": p.Target, "title": p.Title, "description": p.Description, "status": p.Status,
		"mergedRevision": p.Merged, "webUrl": fmt.Sprintf("https://codeup.aliyun.com/%s/%s/change/%d", c.Org, c.Path, p.LocalID),
		"createFrom": "WEB", "sourceCommitId": ""}
}
