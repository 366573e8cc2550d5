package promote

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/journal"
)

// Errors of a decision; the HTTP side maps them to statuses.
var (
	ErrNotApprover    = errors.New("not an approver of this stage")
	ErrNoApprovalGate = errors.New("the stage has no approval gate")
	ErrNoCandidate    = errors.New("the stage has no candidate to approve")
	ErrDigestMismatch = errors.New("the candidate is another digest")
)

// maxDecisionBody bounds an approve or reject request's body.
const maxDecisionBody = 4 << 10

// maxComment bounds a comment as it is recorded (one line).
const maxComment = 500

// Approver returns the approver whose token this is, comparing with every approver's in constant
// time, or "".
func (c *Controller) Approver(token string) string {
	if strings.TrimSpace(token) == "" {
		return ""
	}
	got := sha256.Sum256([]byte(token))
	found := ""
	for name, t := range c.approvers {
		want := sha256.Sum256([]byte(t))
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			found = name
		}
	}
	return found
}

// Decide records an approver's approval (or rejection) of the stage's candidate. digest, when
// given, must be the candidate's: a candidate that changed meanwhile is not approved by mistake.
func (c *Controller) Decide(ctx context.Context, pipelineName, stageName, approver string, approve bool, digest, comment string) (StageView, error) {
	return c.decide(ctx, pipelineName, stageName, approver, approve, digest, comment, "")
}

func isDigestMismatch(err error) bool { return errors.Is(err, ErrDigestMismatch) }

// decide is Decide through a one-time link (link is its id; "" for the API).
func (c *Controller) decide(ctx context.Context, pipelineName, stageName, approver string, approve bool, digest, comment, link string) (StageView, error) {
	i := slices.IndexFunc(c.pipelines, func(p pipeline) bool { return p.name == pipelineName })
	if i < 0 {
		return StageView{}, fmt.Errorf("pipeline %q: %w", pipelineName, ErrUnknown)
	}
	p := &c.pipelines[i]
	s := p.stage(stageName)
	if s == nil {
		return StageView{}, fmt.Errorf("stage %q: %w", stageName, ErrUnknown)
	}
	a := s.Gates.Approval
	if a == nil || a.PullRequest {
		return StageView{}, ErrNoApprovalGate
	}
	if !slices.Contains(a.Approvers, approver) {
		return StageView{}, ErrNotApprover
	}
	v, err := c.evaluate(ctx, *p, s)
	if err != nil {
		return StageView{}, err
	}
	if v.Candidate == nil {
		return v, ErrNoCandidate
	}
	if digest != "" && digest != v.Candidate.Key() {
		return v, fmt.Errorf("%w: %s", ErrDigestMismatch, v.Candidate.Key())
	}
	comment = oneLineComment(comment)
	d := journal.Decision{Pipeline: pipelineName, Stage: stageName, Digest: v.Candidate.Key(), Approver: approver,
		Approve: approve, Comment: comment, At: c.opts.Now().UTC(), Link: link}
	if err := c.store.Decide(ctx, d); err != nil {
		return v, err
	}
	verb := "approved"
	if !approve {
		verb = "rejected"
	}
	c.log.Info("promotion "+verb, "pipeline", pipelineName, "stage", stageName, "approver", approver, "candidate", d.Digest)
	c.Poke()
	return c.evaluate(ctx, *p, s)
}

// Handler serves the pipelines API: GET /pipelines and /pipelines/{name} for whoever admin lets in,
// POST /pipelines/{name}/stages/{stage}/approve|reject for an approver's bearer token, and
// …/hold|release for an approver of the stage or, when admin credentials are configured
// (adminSet), whoever has them.
func (c *Controller) Handler(admin func(*http.Request) bool, adminSet bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pipelines", func(w http.ResponseWriter, r *http.Request) {
		if !admin(r) {
			writeError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		vs, err := c.Views(r.Context())
		if err != nil {
			c.log.Warn("pipelines not read", "err", err)
			writeError(w, http.StatusServiceUnavailable, "pipelines not read; try again")
			return
		}
		writeJSON(w, http.StatusOK, vs)
	})
	mux.HandleFunc("GET /pipelines/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !admin(r) {
			writeError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		v, err := c.View(r.Context(), r.PathValue("name"))
		switch {
		case errors.Is(err, ErrUnknown):
			writeError(w, http.StatusNotFound, "no such pipeline")
		case err != nil:
			c.log.Warn("pipeline not read", "err", err)
			writeError(w, http.StatusServiceUnavailable, "pipeline not read; try again")
		default:
			writeJSON(w, http.StatusOK, v)
		}
	})
	a := api{c: c}
	mux.HandleFunc("GET /ui/pipelines", a.handlePage(admin))
	mux.HandleFunc("GET /approvals/{token}", a.handleLink)
	mux.HandleFunc("POST /approvals/{token}", a.handleLink)
	mux.HandleFunc("POST /pipelines/{name}/stages/{stage}/{action}", func(w http.ResponseWriter, r *http.Request) {
		a.handleAction(w, r, admin, adminSet)
	})
	return mux
}

// api is the controller's HTTP side: the actions, the page and the approval links.
type api struct{ c *Controller }

func (a api) handleAction(w http.ResponseWriter, r *http.Request, admin func(*http.Request) bool, adminSet bool) {
	c := a.c
	action := r.PathValue("action")
	if !slices.Contains([]string{"approve", "reject", "hold", "release"}, action) {
		writeError(w, http.StatusNotFound, "want approve, reject, hold or release")
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	approver := c.Approver(token)
	if approver == "" && (action == "approve" || action == "reject" || !adminSet || !admin(r)) {
		writeError(w, http.StatusUnauthorized, "an approver's token is required (Authorization: Bearer …)")
		return
	}
	if approver == "" {
		approver = "admin"
	}
	var body struct {
		Digest  string `json:"digest"`
		Comment string `json:"comment"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxDecisionBody+1))
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, "body not read")
		return
	case len(data) > maxDecisionBody:
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxDecisionBody))
		return
	case len(strings.TrimSpace(string(data))) > 0:
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "body: want {\"digest\": \"sha256:…\", \"comment\": \"…\"}")
			return
		}
	}
	var v StageView
	switch action {
	case "approve", "reject":
		v, err = c.Decide(r.Context(), r.PathValue("name"), r.PathValue("stage"), approver, action == "approve", body.Digest, body.Comment)
	default:
		v, err = c.SetHold(r.Context(), r.PathValue("name"), r.PathValue("stage"), approver, action == "hold", body.Comment)
	}
	switch {
	case errors.Is(err, ErrUnknown):
		writeError(w, http.StatusNotFound, "no such pipeline or stage")
	case errors.Is(err, ErrNotApprover), errors.Is(err, ErrNotAllowed):
		writeError(w, http.StatusForbidden, approver+" is not an approver of this stage")
	case errors.Is(err, ErrNoApprovalGate), errors.Is(err, ErrNoCandidate):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrDigestMismatch):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "stage": v})
	case err != nil:
		c.log.Warn("decision not recorded", "err", err)
		writeError(w, http.StatusServiceUnavailable, "decision not recorded; try again")
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// oneLineComment makes a person's comment one line of at most maxComment bytes.
func oneLineComment(s string) string {
	s = event.OneLine(s)
	if len(s) > maxComment {
		s = strings.ToValidUTF8(s[:maxComment], "") + "…"
	}
	return s
}
