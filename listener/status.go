package listener

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/lang"
)

//go:embed ui/*.html
var uiFS embed.FS

// Images reads what git holds now for targets (the status page's "in git now"), keyed by target
// key: once per page for all of them, from the cached tip (no fetch).
type Images interface {
	CurrentImages(ctx context.Context, targets []event.Target) map[string]Image
}

// Image is what git holds for one target, or why it could not be read.
type Image struct {
	Image string
	Err   error
}

var (
	funcs = template.FuncMap{
		"step": func(ev *event.Event, name string) *event.Step {
			s, ok := ev.Step(name)
			if !ok {
				return nil
			}
			return &s
		},
		"since": func(from, to time.Time) string {
			if from.IsZero() || to.IsZero() {
				return ""
			}
			return "+" + to.Sub(from).Round(10*time.Millisecond).String()
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Local().Format("2006-01-02 15:04:05")
		},
	}
	listPage  = template.Must(template.New("events.html").Funcs(funcs).ParseFS(uiFS, "ui/layout.html", "ui/events.html"))
	eventPage = template.Must(template.New("event.html").Funcs(funcs).ParseFS(uiFS, "ui/layout.html", "ui/event.html"))
)

// labels are the pages' words, by language.
var labels = lang.Words{
	"en": {"pipelines": "Pipelines", "recent": "Recent events", "workloads": "Workloads", "target": "Target", "ingit": "In git now", "last": "Last event",
		"deploy": "Deploy", "ready": "Ready at", "received": "Received", "hook": "Hook", "image": "Image", "status": "Status",
		"commit": "Commit", "apply": "Apply", "notify": "Notify", "none": "No events yet.", "noworkloads": "No workload targets configured.",
		"event": "Event", "source": "Source", "steps": "Steps", "timeline": "Timeline", "step": "Step", "changes": "Changes",
		"detail": "Detail", "by": "pushed by", "attempts": "attempts", "warning": "Warning", "refresh": "This page refreshes while events are running.",
		"webhook": "webhook received", "verified": "verified by the registry", "pushed": "pushed", "synced": "synced", "readyat": "ready", "newest": "newest first",
		"open": "This page is open to anyone who can reach imagehook: admin: is not set in the configuration, so the status page, /events and /metrics need no credentials."},
	"zh": {"pipelines": "晋级流水线", "recent": "最近事件", "workloads": "工作负载", "target": "目标", "ingit": "Git 中当前镜像", "last": "最近事件",
		"deploy": "部署", "ready": "就绪时间", "received": "收到时间", "hook": "钩子", "image": "镜像", "status": "状态",
		"commit": "提交", "apply": "集群更新", "notify": "通知", "none": "暂无事件。", "noworkloads": "未配置工作负载目标。",
		"event": "事件", "source": "来源", "steps": "步骤", "timeline": "时间线", "step": "步骤", "changes": "变更",
		"detail": "详情", "by": "推送者", "attempts": "尝试次数", "warning": "警告", "refresh": "有事件进行中时本页会自动刷新。",
		"webhook": "收到 webhook", "verified": "仓库校验通过", "pushed": "已推送", "synced": "已同步", "readyat": "已就绪", "newest": "最新在前",
		"open": "本页对任何能访问 imagehook 的人开放：配置中未设置 admin:，状态页、/events 和 /metrics 无需凭据即可访问。"},
}

// language picks the page's language: ?lang= (the switch), else the browser's first preference.
func language(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); lang.Known(l) {
		return l
	}
	return lang.Preferred(r.Header.Get("Accept-Language"))
}

// statusPages serves the status page and an event's page, and guards every read-only view with
// the admin credentials.
type statusPages struct {
	cfg    *config.Config
	events Events
	// images reads what git holds for the workloads (nil: not shown).
	images Images
	// hooks are the Server's hooks being served, whose workload targets the page lists.
	hooks *atomic.Pointer[hookSet]
	log   *slog.Logger
}

// AdminOK checks a request against the admin credentials (open when none are configured): the
// status page's rule, for the other read-only views (the pipelines API).
func (s *Server) AdminOK(r *http.Request) bool { return s.pages.adminOK(r) }

// adminOK checks the status page's credentials: open when none are configured.
func (p *statusPages) adminOK(r *http.Request) bool {
	a := p.cfg.Admin
	if a.Token == "" && a.Password == "" {
		return true
	}
	eq := func(x, y string) bool {
		hx, hy := sha256.Sum256([]byte(x)), sha256.Sum256([]byte(y))
		return subtle.ConstantTimeCompare(hx[:], hy[:]) == 1
	}
	if a.Token != "" {
		if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && eq(t, a.Token) {
			return true
		}
	}
	if a.Password != "" {
		if u, p, ok := r.BasicAuth(); ok && eq(u, a.Username) && eq(p, a.Password) {
			return true
		}
	}
	return false
}

func (p *statusPages) ui(h func(http.ResponseWriter, *http.Request, httprouter.Params)) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if !p.adminOK(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="imagehook"`)
			writeError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// No script at all: the pages refresh themselves with <meta http-equiv="refresh">.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Vary", "Accept-Language")
		h(w, r, ps)
	}
}

// workloadRow is one target on the status page.
type workloadRow struct {
	Hook   string
	Target event.Target
	InGit  string
	// InGitNote says why InGit could not be read.
	InGitNote string
	Last      *event.Event
	Deploy    *event.Step
	ReadyAt   time.Time
}

// maxWorkloads bounds the rows (and the git reads) of one status page.
const maxWorkloads = 200

func (p *statusPages) workloads(ctx context.Context, recent []*event.Event) []workloadRow {
	var rows []workloadRow
	seen := map[string]bool{}
	// The newest event of each target, from one pass over the recent ones (newest first).
	last := map[string]*event.Event{}
	for _, ev := range recent {
		for _, t := range ev.Targets {
			if k := t.Key(); last[k] == nil {
				last[k] = ev
			}
		}
	}
	hooks := p.hooks.Load()
	ids := make([]string, 0, len(hooks.byID))
	for id := range hooks.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, ct := range hooks.byID[id].Targets {
			t := ct.Event()
			if t.Workload == "" || seen[t.Key()] || len(rows) == maxWorkloads {
				continue
			}
			seen[t.Key()] = true
			row := workloadRow{Hook: id, Target: t}
			if ev := last[t.Key()]; ev != nil {
				row.Last = ev
				if st, ok := ev.Step(event.StepDeploy); ok {
					row.Deploy = &st
					row.ReadyAt = st.ReadyAt
				}
			}
			rows = append(rows, row)
		}
	}
	// What git holds, for every row at once: one read of each repository's cached tip.
	var inRepo []event.Target
	for _, row := range rows {
		if row.Target.Repo != "" {
			inRepo = append(inRepo, row.Target)
		}
	}
	if len(inRepo) == 0 || p.images == nil {
		return rows
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	images := p.images.CurrentImages(ictx, inRepo)
	for i := range rows {
		if rows[i].Target.Repo == "" {
			continue
		}
		img, ok := images[rows[i].Target.Key()]
		switch {
		case !ok:
			rows[i].InGit, rows[i].InGitNote = "—", "not read"
		case img.Err != nil:
			rows[i].InGit, rows[i].InGitNote = "—", event.Cut(img.Err.Error())
		default:
			rows[i].InGit = img.Image
		}
	}
	return rows
}

// running reports whether any event is still on its way: the page then refreshes itself.
func running(evs ...*event.Event) bool {
	for _, ev := range evs {
		if !ev.Status.Done() {
			return true
		}
	}
	return false
}

func (p *statusPages) handleStatus(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	evs, err := p.events.Recent(r.Context(), 100)
	if err != nil {
		p.log.Error("status page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	l := language(r)
	data := map[string]any{"Title": labels.In(l)["recent"], "Events": evs, "Workloads": p.workloads(r.Context(), evs),
		"T": labels.In(l), "Lang": l, "Refresh": running(evs...), "Path": "/", "Open": !p.adminConfigured(), "Pipelines": len(p.cfg.Pipelines) > 0}
	if err := listPage.Execute(w, data); err != nil {
		p.log.Error("status page", "err", err)
	}
}

// timelineEntry is one moment of an event's way to Ready.
type timelineEntry struct {
	Label string
	At    time.Time
	After string
}

func timeline(ev *event.Event, t map[string]string) []timelineEntry {
	out := []timelineEntry{{Label: t["webhook"], At: ev.ReceivedAt}}
	add := func(label string, at time.Time) {
		if !at.IsZero() {
			out = append(out, timelineEntry{Label: label, At: at, After: "+" + at.Sub(ev.ReceivedAt).Round(10*time.Millisecond).String()})
		}
	}
	if st, ok := ev.Step(event.StepVerify); ok && st.Status == event.Succeeded {
		add(t["verified"], st.At)
	}
	if st, ok := ev.Step(event.StepGit); ok && st.Status == event.Succeeded && st.Commit != "" {
		add(t["pushed"], st.At)
	}
	if st, ok := ev.Step(event.StepDeploy); ok {
		add(t["synced"], st.SyncedAt)
		add(t["readyat"], st.ReadyAt)
	}
	return out
}

func (p *statusPages) handleEventPage(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	ev, err := p.events.Get(r.Context(), ps.ByName("id"))
	if errors.Is(err, event.ErrNotFound) {
		http.Error(w, "event not found", http.StatusNotFound)
		return
	}
	if err != nil {
		p.log.Error("event page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	l := language(r)
	data := map[string]any{"Title": fmt.Sprintf("%s %s", labels.In(l)["event"], ev.ID), "Event": ev, "T": labels.In(l), "Lang": l,
		"Refresh": running(ev), "Timeline": timeline(ev, labels.In(l)), "Path": "/ui/events/" + ev.ID, "Open": !p.adminConfigured(), "Pipelines": len(p.cfg.Pipelines) > 0}
	if err := eventPage.Execute(w, data); err != nil {
		p.log.Error("event page", "err", err)
	}
}

// adminConfigured reports whether read endpoints require credentials.
func (p *statusPages) adminConfigured() bool {
	return p.cfg.Admin.Token != "" || p.cfg.Admin.Password != ""
}
