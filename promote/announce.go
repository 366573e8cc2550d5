package promote

import (
	"context"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/imagehook/imagehook/approval"
	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/notify"
)

// Announcer tells people about a stage: the stage's notifiers and, by mail, the recipients of the
// candidate's event.
type Announcer interface {
	Announce(ctx context.Context, notifiers []string, mail *event.Mail, n notify.Notice)
}

// Links signs the one-time approve and reject links of approval requests.
type Links struct {
	URL    string // imagehook's address as approvers reach it
	Signer *approval.Signer
	TTL    time.Duration
}

// NewLinks builds the links of the approvalLinks: section (nil without one): its key signs them.
func NewLinks(l *config.ApprovalLinks) (*Links, error) {
	if l == nil {
		return nil, nil
	}
	signer, err := approval.NewSigner([]byte(config.TrimSecret(l.Key)))
	if err != nil {
		return nil, err
	}
	return &Links{URL: l.URL, Signer: signer, TTL: time.Duration(l.TTL)}, nil
}

// notices tells a stage's notifiers that it waits for approval or is held: each notice once, by
// whichever process records it first in the journal (a restart or a replica taking over sends
// nothing again).
type notices struct {
	j         Journal
	store     journal.Promotions
	announcer Announcer
	links     *Links
	now       func() time.Time
	log       *slog.Logger
	told      announced
}

// announced remembers the notices this process has seen recorded, so that the journal is asked
// once per notice.
type announced struct {
	mu sync.Mutex
	m  map[string]bool
}

func (a *announced) seen(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[key]
}

func (a *announced) add(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]bool{}
	}
	a.m[key] = true
}

// Kinds of notice: the journal's, which its pruning tells apart.
const (
	noticeApproval = journal.NoticeApproval
	noticeHeld     = journal.NoticeHeld
)

// announce tells a stage's notifiers that it waits for approval or is held, once per candidate
// and per hold. The notice is recorded before it is sent: a crash in between loses it (the
// pipeline's page and JSON still say what the stage waits on) rather than sending it twice.
func (c *notices) announce(ctx context.Context, p pipeline, s *stage, v StageView) {
	if c.announcer == nil {
		return
	}
	var n notify.Notice
	var mail *event.Mail
	switch {
	case v.State == ReasonAwaitingApproval && v.Candidate != nil && s.Gates.Approval != nil:
		if !c.first(ctx, p, s, noticeApproval, v.Candidate.Event+" "+v.Candidate.Key()) {
			return
		}
		n = c.approvalNotice(p, s, v)
		if from, err := c.j.Get(ctx, v.Candidate.Event); err == nil {
			mail = from.Mail
		}
	case v.State == ReasonHeld && v.Held != nil:
		if !c.first(ctx, p, s, noticeHeld, holdKey(v.Held)) {
			return
		}
		n = notify.Notice{Title: fmt.Sprintf("%s: %s is held", p.name, s.Name),
			Lines: []string{event.OneLine(v.Held.Detail), "Release it with: imagehook release --pipeline " + p.name + " --stage " + s.Name}}
	default:
		return
	}
	c.announcer.Announce(ctx, s.Notify, mail, n)
}

// first reports whether the notice is to be sent: not seen by this process, and recorded first in
// the journal. A journal that cannot record it sends nothing now (said in the log) and is asked
// again on the next pass.
func (c *notices) first(ctx context.Context, p pipeline, s *stage, kind, key string) bool {
	mem := kind + "\x00" + p.name + "\x00" + s.Name + "\x00" + key
	if c.told.seen(mem) {
		return false
	}
	first, err := c.store.Noticed(ctx, journal.Notice{Pipeline: p.name, Stage: s.Name, Kind: kind, Key: key, At: c.now().UTC()})
	if err != nil {
		c.log.Warn("promotion notice not recorded, so not sent; trying again", "pipeline", p.name, "stage", s.Name, "kind", kind, "err", err)
		return false
	}
	c.told.add(mem)
	if !first {
		c.log.Info("promotion notice already sent by an earlier process or another replica; not sent again", "pipeline", p.name, "stage", s.Name, "kind", kind)
	}
	return first
}

// holdKey names a hold for its notice: the commit that changed the stage, else when it was set
// through the API, else the value git holds.
func holdKey(h *Held) string {
	switch {
	case h.Commit != "":
		return h.Commit
	case !h.At.IsZero():
		return "api " + h.At.UTC().Format(time.RFC3339Nano)
	}
	return "value " + h.Image
}

// approvalNotice is the request for approval: the candidate, who may approve, and for each of
// them an approve and a reject link when links are configured (the CLI's command otherwise).
func (c *notices) approvalNotice(p pipeline, s *stage, v StageView) notify.Notice {
	a := s.Gates.Approval
	cand := v.Candidate
	image := event.OneLine(cand.Image)
	if cand.Digest != "" {
		image += "@" + cand.Digest
	}
	n := notify.Notice{
		Title: fmt.Sprintf("%s: %s waits for approval", p.name, s.Name),
		Lines: []string{
			"Candidate: " + image,
			fmt.Sprintf("From stage %s, event %s", s.After, cand.Event),
			fmt.Sprintf("Approvers: %s (%d needed)", strings.Join(a.Approvers, ", "), a.Count),
		},
	}
	l := c.links
	if l == nil {
		n.Lines = append(n.Lines, fmt.Sprintf("Approve with: imagehook approve --pipeline %s --stage %s --digest %s", p.name, s.Name, cand.Key()))
		return n
	}
	expires := c.now().Add(l.TTL)
	for _, who := range a.Approvers {
		for _, act := range []approval.Action{approval.Approve, approval.Reject} {
			tok, _, err := l.Signer.Sign(approval.Link{Approver: who, Pipeline: p.name, Stage: s.Name, Digest: cand.Key(), Action: act, Expires: expires})
			if err != nil {
				c.log.Warn("approval link not signed", "err", err)
				continue
			}
			verb := "Approve"
			if act == approval.Reject {
				verb = "Reject"
			}
			n.Buttons = append(n.Buttons, notify.Button{Text: verb + " as " + who, URL: strings.TrimSuffix(l.URL, "/") + "/approvals/" + url.PathEscape(tok)})
		}
	}
	n.Lines = append(n.Lines, "Each link works once, until "+expires.UTC().Format(time.RFC3339)+".")
	return n
}

var linkPage = template.Must(template.New("link").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>imagehook approval</title>
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}code{word-break:break-all}</style></head>
<body><h1>{{.Heading}}</h1>
{{range .Lines}}<p>{{.}}</p>{{end}}
{{if .Form}}<form method="post"><button type="submit">{{.Button}}</button></form>{{end}}
</body></html>
`))

type linkView struct {
	Heading string
	Lines   []string
	Form    bool
	Button  string
}

// handleLink serves an approval link: GET shows what it will do and a button (link previews and
// mail scanners fetch GET, so GET never records), POST records the decision once.
func (a api) handleLink(w http.ResponseWriter, r *http.Request) {
	c := a.c
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	page := func(code int, v linkView) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		_ = linkPage.Execute(w, v)
	}
	if c.opts.Links == nil {
		page(http.StatusNotFound, linkView{Heading: "Approval links are not configured"})
		return
	}
	l, err := c.opts.Links.Signer.Check(r.PathValue("token"), c.opts.Now())
	switch {
	case err == approval.ErrExpired:
		page(http.StatusGone, linkView{Heading: "This link has expired", Lines: []string{"Ask for a new one, or use imagehook approve."}})
		return
	case err != nil:
		page(http.StatusBadRequest, linkView{Heading: "This is not a valid approval link"})
		return
	}
	verb := "approve"
	if l.Action == approval.Reject {
		verb = "reject"
	}
	what := []string{
		fmt.Sprintf("%s, %s %s into stage %s of pipeline %s?", l.Approver, verb, l.Digest, l.Stage, l.Pipeline),
	}
	if r.Method != http.MethodPost {
		page(http.StatusOK, linkView{Heading: "Confirm", Lines: what, Form: true, Button: strings.ToUpper(verb[:1]) + verb[1:]})
		return
	}
	_, err = c.decide(r.Context(), l.Pipeline, l.Stage, l.Approver, l.Action == approval.Approve, l.Digest, "", l.ID)
	switch {
	case err == nil:
		page(http.StatusOK, linkView{Heading: "Recorded", Lines: []string{fmt.Sprintf("%s: %sd %s for %s/%s.", l.Approver, verb, l.Digest, l.Pipeline, l.Stage)}})
	case err == journal.ErrLinkUsed:
		page(http.StatusConflict, linkView{Heading: "This link has been used already", Lines: []string{"Nothing was recorded this time."}})
	case isDigestMismatch(err):
		page(http.StatusConflict, linkView{Heading: "The candidate has changed", Lines: []string{"This link was for " + l.Digest + "; nothing was recorded. A new request is sent for the new candidate."}})
	default:
		c.log.Warn("approval link not recorded", "pipeline", l.Pipeline, "stage", l.Stage, "err", err)
		page(http.StatusConflict, linkView{Heading: "Not recorded", Lines: []string{"The stage cannot take this decision now; nothing was recorded."}})
	}
}
