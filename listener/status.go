package listener

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/imagehook/imagehook/event"
)

//go:embed ui/*.html
var uiFS embed.FS

var (
	funcs = template.FuncMap{"step": func(ev *event.Event, name string) *event.Step {
		s, ok := ev.Step(name)
		if !ok {
			return nil
		}
		return &s
	}}
	listPage  = template.Must(template.New("events.html").Funcs(funcs).ParseFS(uiFS, "ui/layout.html", "ui/events.html"))
	eventPage = template.Must(template.New("event.html").Funcs(funcs).ParseFS(uiFS, "ui/layout.html", "ui/event.html"))
)

// adminOK checks the status page's credentials: open when none are configured.
func (s *Server) adminOK(r *http.Request) bool {
	a := s.cfg.Admin
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

func (s *Server) ui(h func(http.ResponseWriter, *http.Request, httprouter.Params)) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if !s.adminOK(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="imagehook"`)
			writeError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h(w, r, ps)
	}
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	evs, err := s.events.Recent(r.Context(), 100)
	if err != nil {
		s.log.Error("status page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := listPage.Execute(w, map[string]any{"Title": "recent events", "Events": evs}); err != nil {
		s.log.Error("status page", "err", err)
	}
}

func (s *Server) handleEventPage(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	ev, err := s.events.Get(r.Context(), ps.ByName("id"))
	if errors.Is(err, event.ErrNotFound) {
		http.Error(w, "event not found", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Error("event page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := eventPage.Execute(w, map[string]any{"Title": "event " + ev.ID, "Event": ev}); err != nil {
		s.log.Error("event page", "err", err)
	}
}

// adminConfigured reports whether read endpoints require credentials.
func (s *Server) adminConfigured() bool { return s.cfg.Admin.Token != "" || s.cfg.Admin.Password != "" }
