// Package listener is imagehook's HTTP side: it authenticates each registry call, turns its payload
// into registry-neutral events, hands them to the updater, and serves event status, health and
// metrics. It never does the update work itself.
package listener

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/intake"
	"github.com/imagehook/imagehook/registry"
	"github.com/imagehook/imagehook/tagpolicy"
)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Updater is what the listener needs of the flow: hand an event over (journaled before it
// returns), and wait for one to finish (?wait=).
type Updater interface {
	Submit(ctx context.Context, ev *event.Event) error
	Wait(ctx context.Context, id string) (*event.Event, error)
}

// Events is what the listener reads of the journal, for GET /events/{id} and the status page.
type Events interface {
	Get(ctx context.Context, id string) (*event.Event, error)
	Recent(ctx context.Context, n int) ([]*event.Event, error)
}

// MaxWait caps ?wait=.
const MaxWait = 5 * time.Minute

// Server serves the HTTP API.
type Server struct {
	cfg     *config.Config
	hooks   atomic.Pointer[hookSet]
	updater Updater
	events  Events
	ready   func(context.Context) error
	log     *slog.Logger
	router  *httprouter.Router
	// failures budgets failed authentications per client address, and answers them.
	failures *failureBudget
	// budgets are what authenticated deliveries are charged to.
	budgets *budgets
	// pages are the status page and the admin guard of every read-only view.
	pages *statusPages
	// forges takes the forges' webhooks.
	forges *forgeDeliveries
	// stopping is closed at shutdown: callers waiting with ?wait= get their answer at once.
	stopping chan struct{}
	stopOnce sync.Once

	requests *prometheus.CounterVec
}

// hookSet is the hooks being served, swapped whole when the hooks directory changes.
type hookSet struct {
	byID map[string]*servedHook
}

type servedHook struct {
	*config.Hook
	policy  tagpolicy.Policy
	sig     *signature
	limiter *rate.Limiter
	// tokens are the hook's tokens, hashed once for constant-time comparison.
	tokens [][32]byte
	// keys are the secrets its signatures are checked with (signingKeys), worked out once.
	keys []string
}

// Deps is everything the listener works with, given at construction.
type Deps struct {
	// Updater takes accepted events.
	Updater Updater
	// Events backs GET /events and the status page.
	Events Events
	// Ready backs /readyz (nil: always ready).
	Ready func(context.Context) error
	// Reviews reads a repository's pull requests when its forge calls (nil: /forges answers 404).
	Reviews Reviews
	// Images reads what git holds now for each workload target, for the status page (nil: not shown).
	Images Images
	// Metrics receives the listener's metrics and is served on /metrics.
	Metrics *prometheus.Registry
}

// New checks the hooks' sources and builds the routes.
func New(cfg *config.Config, d Deps, log *slog.Logger) (*Server, error) {
	reg := d.Metrics
	s := &Server{cfg: cfg, updater: d.Updater, events: d.Events, ready: d.Ready, log: log, stopping: make(chan struct{}),
		failures: newFailureBudget(cfg.Limits.AuthFailureRate, cfg.Limits.AuthFailureBurst, log),
		budgets:  newBudgets(cfg.Limits, d.Events, log),
		pages:    &statusPages{cfg: cfg, events: d.Events, images: d.Images, log: log}}
	s.pages.hooks = &s.hooks
	s.forges = &forgeDeliveries{cfg: cfg, reviews: d.Reviews, failures: s.failures, budgets: s.budgets, log: log, byRepo: map[string]*forgeBudget{}}
	if err := s.SetHooks(cfg.Hooks); err != nil {
		return nil, err
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imagehook_webhook_requests_total", Help: "Webhook calls by hook, source and HTTP status.",
	}, []string{"hook", "source", "code"})
	reg.MustRegister(s.requests)

	r := httprouter.New()
	r.POST("/hooks/:id", s.handleHook)
	r.POST("/forges/:repo", s.forges.handle)
	r.GET("/events/:id", s.pages.ui(s.handleEvent))
	r.GET("/healthz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.GET("/readyz", s.handleReady)
	r.GET("/", s.pages.ui(s.pages.handleStatus))
	r.GET("/ui/events/:id", s.pages.ui(s.pages.handleEventPage))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if cfg.Metrics.Public {
		r.Handler(http.MethodGet, "/metrics", metrics)
	} else {
		r.GET("/metrics", s.pages.ui(func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { metrics.ServeHTTP(w, r) }))
	}
	if !s.pages.adminConfigured() {
		log.Warn("admin is not configured: the status page, /events and /metrics are open to anyone who can reach imagehook")
	}
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.log.Error("panic serving request", "path", req.URL.Path, "panic", fmt.Sprint(v))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
	s.router = r
	return s, nil
}

// Stop releases the requests waiting for events (?wait=), so that a graceful shutdown is quick;
// they answer 202 with the event's state.
func (s *Server) Stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// SetHooks replaces the hooks served, all or nothing. The hooks come validated from config
// (sources, policies and signature rules included); a duplicate id leaves the current set.
func (s *Server) SetHooks(hooks []config.Hook) error {
	set := &hookSet{byID: map[string]*servedHook{}}
	old := s.hooks.Load()
	for i := range hooks {
		h := &hooks[i]
		if set.byID[h.ID] != nil {
			return fmt.Errorf("hooks[%s]: duplicate id", h.ID)
		}
		if h.PollOnly() {
			continue // it has no secret to check a delivery with: POST /hooks/{id} answers 404
		}
		pol, err := tagpolicy.Parse(h.Tags)
		if err != nil {
			return fmt.Errorf("hooks[%s].tags: %w", h.ID, err)
		}
		sh := &servedHook{Hook: h, policy: pol, sig: signatureOf(h.Source), tokens: hashTokens(hookTokens(h)), keys: signingKeys(h)}
		if h.Signature != nil {
			sh.sig = customSignature(h.Signature)
		}
		// A reload keeps each hook's rate budget.
		if old != nil && old.byID[h.ID] != nil {
			sh.limiter = old.byID[h.ID].limiter
		} else {
			sh.limiter = rate.NewLimiter(rate.Limit(s.cfg.Limits.HookRate), max(s.cfg.Limits.HookBurst, 1))
		}
		set.byID[h.ID] = sh
	}
	s.hooks.Store(set)
	return nil
}

// Handler returns the root handler, with request logging.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		s.capBody(rec, r)
		s.router.ServeHTTP(rec, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "query", RedactQuery(r.URL.RawQuery),
			"status", rec.status, "duration", time.Since(start))
	})
}

// HTTPServer returns an http.Server for the handler with timeouts and header limits, so that slow
// or oversized clients cannot hold connections.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      MaxWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// secretParams are query parameters never logged.
var secretParams = map[string]bool{"token": true, "secret": true, "access_token": true, "key": true}

// RedactQuery masks secret values in a raw query string for logging.
func RedactQuery(raw string) string {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "<unparseable>"
	}
	for k := range q {
		if secretParams[strings.ToLower(k)] {
			q[k] = []string{"REDACTED"}
		}
	}
	return q.Encode()
}

// statusError carries the HTTP status for a request failure; its message is safe to show.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errorStatus is the one place that maps an error to a response: the message of a statusError
// or a bad payload is shown, anything else is logged and answered with a generic text.
func (s *Server) errorStatus(err error) (int, string) {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.code, se.msg
	case errors.Is(err, registry.ErrPayload):
		return http.StatusBadRequest, err.Error()
	}
	s.log.Error("request failed", "err", err)
	return http.StatusInternalServerError, "internal error"
}

func (s *Server) handleHook(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	hook := s.hooks.Load().byID[ps.ByName("id")]
	resp := s.hook(r, hook)
	hookLabel, source := "unknown", ""
	if hook != nil {
		hookLabel, source = hook.ID, hook.Source
		if id, ok := resp.body["id"]; ok {
			s.log.Info("webhook accepted", "hook", hook.ID, "event", id, "status", resp.code)
		}
	}
	s.requests.WithLabelValues(hookLabel, source, fmt.Sprint(resp.code)).Inc()
	if resp.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(resp.retryAfter.Seconds()+0.999)))
	}
	writeJSON(w, resp.code, resp.body)
}

type response struct {
	code       int
	body       map[string]any
	retryAfter time.Duration
}

func (s *Server) hook(r *http.Request, hook *servedHook) response {
	if hook == nil {
		return s.errResponse(fail(http.StatusNotFound, "unknown hook"))
	}
	if !allowedAddr(hook.Hook, r.RemoteAddr) {
		return s.errResponse(fail(hook.mismatch(http.StatusForbidden), "caller address not allowed"))
	}
	q := r.URL.Query()
	source, body, err := s.authenticate(r, hook, q)
	if err != nil {
		return s.errResponse(err)
	}
	targets, err := selectTargets(hook.Hook, q, hook.mismatch(http.StatusForbidden))
	if err != nil {
		return s.errResponse(err)
	}
	var wait time.Duration
	if w := q.Get("wait"); w != "" {
		if wait, err = time.ParseDuration(w); err != nil || wait <= 0 {
			return s.errResponse(fail(http.StatusBadRequest, "wait: want a duration such as 30s"))
		}
	}
	pushes, err := registry.Parse(source, &registry.Request{Body: body, Header: r.Header, Query: q, RegistryHost: hook.RegistryHost})
	if n, limit := len(pushes), s.cfg.Limits.MaxEventsPerRequest; limit > 0 && n > limit {
		return s.errResponse(fail(http.StatusRequestEntityTooLarge,
			"%d pushes in one request; at most %d are accepted (limits.maxEventsPerRequest): split the notification", n, limit))
	}
	// Only authenticated deliveries are charged to the budgets (a flood of wrong tokens spends the
	// flooder's failure budget, never a genuine registry's), each push they carry, and a request
	// that carries none (a ping, a bad payload) as one.
	if resp, ok := s.budgets.admit(hook, max(len(pushes), 1)); !ok {
		return resp
	}
	var ign *registry.Ignored
	if errors.As(err, &ign) {
		s.log.Info("webhook ignored", "hook", hook.ID, "reason", ign.Reason)
		return ignored(ign.Reason)
	}
	if err != nil {
		return s.errResponse(err)
	}
	deliveryIDs(r.Header, pushes)
	pushes, reasons := hook.filter(pushes)
	if len(pushes) == 0 {
		reason := strings.Join(reasons, "; ")
		s.log.Info("webhook ignored by tag policy", "hook", hook.ID, "reason", reason)
		return ignored(reason)
	}
	if resp, ok := s.budgets.admitPending(r.Context(), hook, len(pushes)); !ok {
		return resp
	}
	ids, dups, err := s.submit(r.Context(), hook, pushes, targets)
	if err != nil {
		s.log.Error("journal write failed", "hook", hook.ID, "err", err)
		return response{code: http.StatusServiceUnavailable, body: map[string]any{"error": "could not record the event; retry later"}, retryAfter: 5 * time.Second}
	}
	if len(ids) == 0 {
		reason := "duplicate delivery " + strings.Join(dups, ", ")
		s.log.Info("webhook ignored", "hook", hook.ID, "reason", reason)
		return ignored(reason)
	}
	if wait > 0 {
		return s.wait(r.Context(), ids[len(ids)-1], wait)
	}
	resp := map[string]any{"id": ids[0], "status": string(event.Queued)}
	if len(ids) > 1 {
		resp["ids"] = ids
	}
	return response{code: http.StatusAccepted, body: resp}
}

func ignored(reason string) response {
	return response{code: http.StatusOK, body: map[string]any{"status": "ignored", "reason": reason}}
}

func (s *Server) errResponse(err error) response {
	code, msg := s.errorStatus(err)
	resp := response{code: code, body: map[string]any{"error": msg}}
	if code == http.StatusTooManyRequests {
		resp.retryAfter = time.Second
	}
	return resp
}

// caller is who refuses a hook's delivery that failed authentication: 401, or the hook's
// mismatch status.
func (h *servedHook) caller() authCaller {
	return authCaller{what: "webhook", key: "hook", name: h.ID, code: h.mismatch(http.StatusUnauthorized)}
}

// mismatch is the status for a failed trigger rule: the hook's own (the old tool's 500) or def.
func (h *servedHook) mismatch(def int) int {
	if h.MismatchStatus != 0 {
		return h.MismatchStatus
	}
	return def
}

// source decides the payload format: the hook's, or the old tool's repo_type. A repo_type never
// replaces a format whose registry signs (nor a hook with a signature rule): a query string must not
// turn "signature required" into "a token is enough".
func (s *Server) source(hook *servedHook, q url.Values) (string, error) {
	source := hook.Source
	if rt := q.Get("repo_type"); rt != "" && rt != hook.Source {
		if !registry.Known(rt) {
			return "", fail(http.StatusBadRequest, "unknown repo_type %q (known: %s)", truncate(rt, 32), strings.Join(registry.Sources(), ", "))
		}
		if registry.SignatureOf(hook.Source) != nil {
			return "", fail(http.StatusBadRequest, "repo_type %q: this hook takes signed %s deliveries only", truncate(rt, 32), hook.Source)
		}
		source = rt
	}
	if source == "" {
		return "", fail(http.StatusBadRequest, "hook has no payload format: set its source or pass repo_type")
	}
	return source, nil
}

// authenticate decides the payload format, checks the caller's credentials, and reads the body.
// A token is checked before the body is read, so an unauthenticated caller costs no more than its
// headers; a signature (and source: auto) needs the body. Every failure is charged to the caller's
// address; an address past its failure budget gets 429, and is not read at all where reading the
// body would be needed to tell.
func (s *Server) authenticate(r *http.Request, hook *servedHook, q url.Values) (string, []byte, error) {
	source, err := s.source(hook, q)
	if err != nil {
		return "", nil, err
	}
	addr := clientAddr(r.RemoteAddr)
	// First the format and the signature it needs; a signature or source: auto needs the body.
	var body []byte
	if source == "auto" || hook.signatureFor(source) != nil {
		if s.failures.exhausted(addr) {
			return "", nil, s.failures.refuse(hook.caller(), addr, faultExhausted)
		}
		if body, err = readBody(r, s.cfg.MaxBodyBytes); err != nil {
			return "", nil, err
		}
		if source == "auto" {
			source = registry.Detect(r.Header, body)
		}
	}
	// Then the credential, once.
	if why := hook.credentialFault(source, r, q, body); why != faultNone {
		return "", nil, s.failures.refuse(hook.caller(), addr, why)
	}
	if source == "" {
		return "", nil, fail(http.StatusBadRequest, "cannot tell the payload format: set the hook's source")
	}
	if body == nil {
		if body, err = readBody(r, s.cfg.MaxBodyBytes); err != nil {
			return "", nil, err
		}
	}
	return source, body, nil
}

// signatureFor is the signature a delivery in the given format must carry: the hook's own rule,
// else the format's (nil when it needs none).
func (h *servedHook) signatureFor(source string) *signature {
	if h.Signature != nil {
		return h.sig
	}
	return signatureOf(source)
}

// credentialFault checks what the delivery offers against what the hook requires and says what is
// wrong ("" when nothing): a token, unless a signature is the hook's only secret; and a valid
// signature, wherever the format or the hook's rule asks for one.
func (h *servedHook) credentialFault(source string, r *http.Request, q url.Values, body []byte) authFault {
	sig := h.signatureFor(source)
	needToken := sig == nil || h.Signature != nil && !config.Blank(h.Signature.Secret) && len(h.tokens) > 0
	if needToken && !authorized(h.tokens, r, q) {
		return faultToken
	}
	if sig != nil && !sig.Verify(h.keys, r.Header, body) {
		return faultSignature
	}
	return faultNone
}

// capBody is the one rule for request bodies, applied to every route before it runs: no handler
// can read more than maxBodyBytes of one, whatever it reads with.
func (s *Server) capBody(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && s.cfg.MaxBodyBytes > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	}
}

// readBody reads the request body within the size limit (capBody's): past it, 413.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fail(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
		}
		return nil, fail(http.StatusBadRequest, "reading body failed")
	}
	return body, nil
}

// filter keeps the pushes whose tag the hook's policy accepts, and says why it dropped the others.
func (h *servedHook) filter(pushes []registry.Parsed) ([]registry.Parsed, []string) {
	var kept []registry.Parsed
	var reasons []string
	for _, p := range pushes {
		ref, _ := imageref.Parse(p.Push.Image)
		if ok, why := h.policy(ref.Tag); !ok {
			reasons = append(reasons, why)
			continue
		}
		kept = append(kept, p)
	}
	return kept, reasons
}

// submit journals one event per push; it returns once all are on disk, with the ids of the events
// journaled and the delivery ids refused as repeats.
func (s *Server) submit(ctx context.Context, hook *servedHook, pushes []registry.Parsed, targets []event.Target) ([]string, []string, error) {
	now := time.Now().UTC()
	var ids, dups []string
	for _, p := range pushes {
		if hook.RegistryHost != "" {
			p.Push.ExplicitHost = true
		}
		ev := intake.Event(hook.Hook, p.Push, targets, now)
		ev.Delivery, ev.Warnings = p.Delivery, p.Warnings
		// The caller going away must not leave a half-recorded answer: the write completes.
		err := s.updater.Submit(context.WithoutCancel(ctx), ev)
		if errors.Is(err, event.ErrDuplicateDelivery) {
			dups = append(dups, p.Delivery)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, ev.ID)
	}
	return ids, dups, nil
}

// wait blocks until the event is done, the wait or the caller ends, or the server stops.
func (s *Server) wait(ctx context.Context, id string, d time.Duration) response {
	ctx, cancel := context.WithTimeout(ctx, min(d, MaxWait))
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	ev, err := s.updater.Wait(ctx, id)
	switch {
	case err != nil:
		return response{code: http.StatusAccepted, body: map[string]any{"id": id, "status": string(event.Queued)}}
	case ev.Status.Done():
		return response{code: http.StatusOK, body: eventBody(ev)}
	}
	return response{code: http.StatusAccepted, body: eventBody(ev)}
}

func eventBody(ev *event.Event) map[string]any {
	data, _ := json.Marshal(ev)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return m
}

// selectTargets applies the old tool's trigger rule: ns, workload and container, when given in the
// URL, must name one of the hook's targets, and then only the matching targets are updated.
func selectTargets(hook *config.Hook, q url.Values, mismatchCode int) ([]event.Target, error) {
	ns, wl, ctr := q.Get("ns"), q.Get("workload"), q.Get("container")
	var out []event.Target
	for _, t := range hook.Targets {
		if ns != "" && ns != t.Namespace || wl != "" && !strings.EqualFold(wl, t.Workload) || ctr != "" && ctr != t.Container {
			continue
		}
		out = append(out, t.Event())
	}
	if len(out) == 0 {
		return nil, fail(mismatchCode, "trigger rule not satisfied: ns/workload/container do not match this hook's targets")
	}
	return out, nil
}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	ev, err := s.events.Get(r.Context(), ps.ByName("id"))
	if err != nil {
		if errors.Is(err, event.ErrNotFound) {
			writeError(w, http.StatusNotFound, "event not found")
			return
		}
		code, msg := s.errorStatus(err)
		writeError(w, code, msg)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if s.ready != nil {
		if err := s.ready(r.Context()); err != nil {
			s.log.Warn("not ready", "err", err)
			writeError(w, http.StatusServiceUnavailable, "not ready")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
