// Package service assembles imagehook's components from a configuration and runs them. main only
// parses flags and handles signals; end-to-end tests run this same wiring on :0.
package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/imagehook/imagehook/outbound"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/imagehook/imagehook/cluster"
	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/deploy"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/listener"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/notify"
	"github.com/imagehook/imagehook/notify/chat"
	"github.com/imagehook/imagehook/notify/mail"
	"github.com/imagehook/imagehook/oci"
	"github.com/imagehook/imagehook/promote"
	"github.com/imagehook/imagehook/reconcile"
	"github.com/imagehook/imagehook/redact"
	"github.com/imagehook/imagehook/replica"
	"github.com/imagehook/imagehook/updater"
)

// Options holds what is not in the config file.
type Options struct {
	Updater updater.Options
	// ShutdownTimeout bounds the graceful stop.
	ShutdownTimeout time.Duration
	// HooksDirPoll is how often the hooks directory is checked for changes.
	HooksDirPoll time.Duration
	// Promote tunes the promotion controller (its pass interval, its clock).
	Promote promote.Options
	// redactor learns the tokens of reloaded hooks.
	redactor *redact.Redactor
}

// Service is a configured, not yet running imagehook.
type Service struct {
	cfg     *config.Config
	log     *slog.Logger
	journal journal.Journal
	// replica shares the queues with other processes on a PostgreSQL journal (nil on SQLite).
	replica  *replica.Coordinator
	updater  *updater.Updater
	http     *http.Server
	ln       net.Listener
	listener *listener.Server
	// reconcile polls registries for the hooks that ask for it.
	reconcile *reconcile.Reconciler
	// promote moves images between pipeline stages (nil without pipelines).
	promote *promote.Controller
	// notifier is every configured notifier (the updater's reports, promotion's notices).
	notifier notify.All
	opts     Options
}

// New builds every component and binds the listen address, so that a port clash is reported before
// anything runs (and Addr is known when Listen is :0).
func New(cfg *config.Config, log *slog.Logger, opts Options) (*Service, error) {
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.HooksDirPoll == 0 {
		opts.HooksDirPoll = 2 * time.Second
	}
	// One redactor for every secret of the configuration, in every log line from here on and in
	// everything events record.
	red := redact.New(cfg.Secrets())
	log = slog.New(red.Handler(log.Handler()))
	opts.Updater.Redactor = red
	opts.redactor = red
	s := &Service{cfg: cfg, log: log, opts: opts}
	var err error
	if s.journal, s.replica, err = openJournal(context.Background(), cfg, log); err != nil {
		return nil, err
	}
	if s.replica != nil {
		s.opts.Updater.Peers = s.replica
	}
	if err := s.build(); err != nil {
		s.journal.Close()
		if s.replica != nil {
			s.replica.Close()
		}
		return nil, err
	}
	return s, nil
}

// openJournal opens the configured journal and, when several processes may share it, this
// replica's coordinator of its queues (nil otherwise): the journal package picks the backend, the
// coordinator comes beside it rather than from it (journal does not depend on replica).
func openJournal(ctx context.Context, cfg *config.Config, log *slog.Logger) (journal.Journal, *replica.Coordinator, error) {
	j, err := journal.Open(ctx, cfg.Journal, cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if !cfg.Journal.Shared() {
		return j, nil, nil
	}
	c, err := replica.New(ctx, cfg.Journal.DSN, queueKeys(cfg), log)
	if err != nil {
		j.Close()
		return nil, nil, err
	}
	return j, c, nil
}

// queueKeys are the queues replicas share: one per repository, and one per cluster for its
// direct-only events (updater.QueueKey names them all, as the flow does).
func queueKeys(cfg *config.Config) []string {
	keys := []string{updater.QueueKey("", "")}
	for _, r := range cfg.Repos {
		keys = append(keys, updater.QueueKey(r.Name, ""))
	}
	for _, c := range cfg.Clusters {
		keys = append(keys, updater.QueueKey("", c.Name))
	}
	return keys
}

// OpenHistoryRepo opens a full-history cache of the configured repository name ("" when there is
// only one), for reading the audit trail: the service's own cache starts shallow.
func OpenHistoryRepo(cfg *config.Config, name string, log *slog.Logger) (*gitops.Repo, error) {
	for _, rc := range cfg.Repos {
		if rc.Name == name || name == "" && len(cfg.Repos) == 1 {
			return openRepo(cfg, rc, true, log)
		}
	}
	return nil, fmt.Errorf("no repository named %q in the config", name)
}

func openRepo(cfg *config.Config, rc config.Repo, fullHistory bool, log *slog.Logger) (*gitops.Repo, error) {
	var signer *gitops.Signer
	if len(rc.SigningKey) > 0 {
		var err error
		if signer, err = gitops.NewSigner(rc.SigningKey, rc.SigningKeyPassphrase); err != nil {
			return nil, fmt.Errorf("repos[%s]: %w", rc.Name, err)
		}
	}
	dir := filepath.Join(cfg.DataDir, "repos", rc.Name+".git")
	if fullHistory {
		dir = filepath.Join(cfg.DataDir, "repos", rc.Name+".history.git")
	}
	return gitops.Open(gitops.Config{Repo: rc.Repo, Signer: signer, FullHistory: fullHistory}, dir, log)
}

func (s *Service) build() error {
	cfg := s.cfg
	repos, readers, caches, err := s.openRepositories()
	if err != nil {
		return err
	}
	notifier, err := NewNotifier(cfg, s.log)
	if err != nil {
		return err
	}
	s.notifier = notifier
	clusters, err := connectClusters(cfg, s.log)
	if err != nil {
		return err
	}
	var applier updater.Applier
	if len(clusters) > 0 {
		applier = &cluster.Applier{Clusters: clusters, RegistryAliases: cfg.RegistryAliases}
	}
	reg := prometheus.NewRegistry()
	s.followDeploys(repos, caches, clusters, deploy.NewMetrics(reg))
	registries := oci.New(registryHosts(cfg), cfg.RegistryAliases, s.log)
	uopts, err := s.updaterOptions(reg, registries)
	if err != nil {
		return err
	}
	holds, err := s.pipelineHolds(readers, caches)
	if err != nil {
		return err
	}
	if holds != nil {
		uopts.Held = holds
	}
	s.updater = updater.New(s.journal, repos, applier, notifier, s.log, uopts)

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imagehook_queue_depth", Help: "Events waiting for their repository's worker."},
		func() float64 { return float64(s.updater.QueueDepth()) }))
	srv, err := listener.New(cfg, listener.Deps{Updater: s.updater, Events: s.journal, Ready: s.journal.Ping,
		Reviews: s.updater, Images: newImages(readers), Metrics: reg}, s.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	s.listener = srv
	s.http = srv.HTTPServer(cfg.Listen)
	ropts := reconcile.Options{Owns: s.owns()}
	if holds != nil {
		if err := s.startPromotion(srv, holds); err != nil {
			return err
		}
		ropts.Held = holds.Held
	}
	s.reconcile = reconcile.New(cfg.Hooks, readers, registries, s.updater, reg, s.log, ropts)
	return nil
}

// owns says whether this replica works a repository's queue (nil with one process: it works all).
func (s *Service) owns() func(repo string) bool {
	if s.replica == nil {
		return nil
	}
	return func(repo string) bool { return s.replica.Owns(updater.QueueKey(repo, "")) }
}

// openRepositories opens every repository's cache and what the flow needs of it: its commit
// template, manifests index and, when it writes through pull requests, its review.
func (s *Service) openRepositories() (map[string]updater.Repository, map[string]reconcile.Repo, map[string]*gitops.Repo, error) {
	cfg := s.cfg
	repos := map[string]updater.Repository{}
	readers := map[string]reconcile.Repo{}
	caches := map[string]*gitops.Repo{}
	for _, rc := range cfg.Repos {
		r, err := openRepo(cfg, rc, false, s.log)
		if err != nil {
			return nil, nil, nil, err
		}
		caches[rc.Name] = r
		repo := updater.Repository{Git: r, CommitURL: rc.CommitURL, Index: openIndex(cfg, rc.Name, s.log)}
		if rc.CommitTemplate != "" {
			if repo.Template, err = template.New(rc.Name).Parse(rc.CommitTemplate); err != nil {
				return nil, nil, nil, fmt.Errorf("repos[%s].commitTemplate: %w", rc.Name, err)
			}
		}
		if rc.WriteBack.PullRequests() {
			if repo.Review, err = newReview(rc, r); err != nil {
				return nil, nil, nil, err
			}
		}
		repos[rc.Name] = repo
		readers[rc.Name] = r
	}
	return repos, readers, caches, nil
}

// followDeploys gives each watched repository its deploy step, which follows a pushed commit on
// the watch's cluster until Argo CD or Fleet runs it.
func (s *Service) followDeploys(repos map[string]updater.Repository, caches map[string]*gitops.Repo, clusters map[string]*cluster.Cluster, metrics *deploy.Metrics) {
	for _, rc := range s.cfg.Repos {
		if w := rc.Watch; w != nil {
			r := repos[rc.Name]
			r.Deploy = deploy.New(clusters[w.Cluster], *w, rc.Repo, metrics,
				caches[rc.Name], s.log.With("repo", rc.Name))
			repos[rc.Name] = r
		}
	}
}

// updaterOptions completes the caller's updater options from the config: retention, aliases,
// the registry resolver, cosign keys and the budgets.
func (s *Service) updaterOptions(reg *prometheus.Registry, registries *oci.Client) (updater.Options, error) {
	cfg := s.cfg
	uopts := s.opts.Updater
	uopts.Metrics = updater.NewMetrics(reg)
	uopts.Retention = time.Duration(cfg.Retention)
	uopts.RegistryAliases = cfg.RegistryAliases
	uopts.Resolver = registries
	keys, err := CosignKeys(cfg)
	if err != nil {
		return uopts, err
	}
	uopts.Signatures = oci.Gate{Client: registries, Keys: keys}
	uopts.Budget = cfg.Limits.Budget()
	return uopts, nil
}

// pipelineHolds builds what finds the pipeline stages' holds (nil without pipelines). It comes
// before the updater, whose admission asks it (updater.Options.Held), so that a strict hold is in
// force before the first event is admitted; the promotion controller is built on it afterwards.
func (s *Service) pipelineHolds(readers map[string]reconcile.Repo, caches map[string]*gitops.Repo) (*promote.Holds, error) {
	if len(s.cfg.Pipelines) == 0 {
		return nil, nil
	}
	popts := s.opts.Promote
	popts.Manifests = stageReader{readers: readers, repos: caches}
	return promote.NewHolds(s.cfg, s.journal, s.log, popts)
}

// startPromotion builds the promotion controller on holds and serves its API beside the
// listener's. It submits through the updater and passes on the updater's progress; the replica
// gives it its owner.
func (s *Service) startPromotion(srv *listener.Server, holds *promote.Holds) error {
	cfg := s.cfg
	popts := s.opts.Promote
	if owns := s.owns(); owns != nil {
		popts.Owns = owns
	}
	popts.Announcer = stageAnnouncer{members: s.notifier}
	popts.Progress = s.updater.Progress()
	links, err := promote.NewLinks(cfg.ApprovalLinks)
	if err != nil {
		return err
	}
	popts.Links = links
	s.promote = promote.New(cfg, holds, s.updater, s.log, popts)
	s.http.Handler = withPipelines(s.http.Handler, s.promote.Handler(srv.AdminOK, cfg.Admin.Token != "" || cfg.Admin.Password != ""))
	return nil
}

// withPipelines serves /pipelines and below from the promotion API, the rest from the listener.
func withPipelines(rest, pipelines http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/pipelines" || strings.HasPrefix(r.URL.Path, "/pipelines/") || strings.HasPrefix(r.URL.Path, "/approvals/") || r.URL.Path == "/ui/pipelines" {
			pipelines.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// openIndex loads the repository's index of where images live (derived data in the data dir:
// rebuilt when missing or corrupt), and logs how far a first build has come.
func openIndex(cfg *config.Config, name string, log *slog.Logger) *manifests.Index {
	ix := manifests.OpenIndex(filepath.Join(cfg.DataDir, "index", name+".idx"), cfg.Limits.Budget(),
		manifests.IndexProgress(func(n int) { log.Info("indexing manifests", "repo", name, "files", n) }))
	files, dirs := ix.Len()
	log.Info("manifests index", "repo", name, "files", files, "dirs", dirs)
	return ix
}

// NewNotifier returns every notifier of cfg: the mail notifier for cfg.Mail, or the log notifier
// when mail is not set up (and always in the quickstart), and each chat notifier.
func NewNotifier(cfg *config.Config, log *slog.Logger) (notify.All, error) {
	var base notify.Member = notify.Log{Logger: log}
	if cfg.Mail != nil && !cfg.Quickstart {
		m, err := mail.New(*cfg.Mail, log)
		if err != nil {
			return nil, err
		}
		base = m
	}
	all := notify.All{base}
	for _, nc := range cfg.Notifiers {
		n, err := chat.New(nc, log)
		if err != nil {
			return nil, err
		}
		all = append(all, n)
	}
	return all, nil
}

// connectClusters makes a client for each configured cluster (direct apply and deploy tracking
// share them).
func connectClusters(cfg *config.Config, log *slog.Logger) (map[string]*cluster.Cluster, error) {
	out := map[string]*cluster.Cluster{}
	for _, cc := range cfg.Clusters {
		rc, err := cluster.RESTConfig(cc.Kubeconfig, cc.Context)
		if err != nil {
			return nil, fmt.Errorf("clusters[%s]: %w", cc.Name, err)
		}
		c, err := cluster.New(cc.Name, rc, log)
		if err != nil {
			return nil, err
		}
		out[cc.Name] = c
	}
	return out, nil
}

// Addr returns the bound listen address.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then stops accepting, lets the batch in flight finish within the
// shutdown timeout, and closes the journal. Events still queued stay in the journal for the next start.
func (s *Service) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The order matters. Promotion's strict hold is already in force (updater.Options.Held, from
	// New), so the updater's first admission, of a resumed event or a webhook, asks it. The updater
	// starts before the others hand it work: its Run reads the journal's pending events and starts
	// the queues' workers (work queued before waits for it). The replica gets the updater in its Run,
	// so that it never wins a queue it cannot hand over, and starts after it, so that a queue taken
	// over is worked at once. Promotion reads the updater's Progress, which keeps a signal sent
	// before it runs.
	updDone := make(chan error, 1)
	go func() { updDone <- s.updater.Run(runCtx) }()
	srvErr := make(chan error, 1)
	go func() { srvErr <- s.http.Serve(s.ln) }()
	if s.cfg.HooksDir != "" {
		go s.watchHooksDir(runCtx)
	}
	go s.reconcile.Run(runCtx)
	if s.promote != nil {
		go s.promote.Run(runCtx)
	}
	if s.replica != nil {
		go s.replica.Run(runCtx, s.updater)
	}
	s.log.Info("imagehook listening", "addr", s.Addr())
	// Start-up (package initialisation, config, schema) leaves garbage behind: return it to the OS
	// now rather than whenever the scavenger gets to it, so an idle imagehook stays small.
	debug.FreeOSMemory()

	var err error
	select {
	case <-ctx.Done():
	case err = <-srvErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	shutdown, stop := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer stop()
	s.listener.Stop()
	if serr := s.http.Shutdown(shutdown); serr != nil && err == nil {
		err = fmt.Errorf("http shutdown: %w", serr)
	}
	cancel()
	select {
	case <-updDone:
	case <-shutdown.Done():
		s.log.Warn("shutdown timeout: leaving unfinished events in the journal for the next start")
	}
	if cerr := s.journal.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if s.replica != nil {
		s.replica.Close()
	}
	return err
}

// watchHooksDir reloads the old tool's hooks.json directory when it changes (a ConfigMap update).
// A broken file keeps the hooks served before and logs why.
func (s *Service) watchHooksDir(ctx context.Context) {
	last := dirFingerprint(s.cfg.HooksDir)
	t := time.NewTicker(s.opts.HooksDirPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := dirFingerprint(s.cfg.HooksDir)
		if fp == last {
			continue
		}
		last = fp
		hooks, err := s.cfg.ReloadHooks()
		if err == nil {
			next := *s.cfg
			next.Hooks = hooks
			// Before the hooks are served: a new token is masked from its first log line.
			s.opts.redactor.Add(next.Secrets())
			err = s.listener.SetHooks(hooks)
		}
		if err != nil {
			s.log.Error("hooks directory changed but does not load; keeping the hooks served", "dir", s.cfg.HooksDir, "err", err)
			continue
		}
		s.log.Info("hooks directory reloaded", "dir", s.cfg.HooksDir, "hooks", len(hooks))
	}
}

// dirFingerprint hashes the names and contents of the directory's JSON files. Contents, not
// modification times: a ConfigMap volume swaps files through symlinks.
func dirFingerprint(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	h := sha256.New()
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CosignKeys parses the key of every hook that requires signatures (check-config refuses what
// the service would refuse at start).
func CosignKeys(cfg *config.Config) (map[string]*oci.CosignKey, error) {
	keys := map[string]*oci.CosignKey{}
	for _, h := range cfg.Hooks {
		if !h.Verify.Signed() {
			continue
		}
		key, err := oci.ParseCosignKey(h.Verify.Cosign.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("hooks[%s].verify.cosign.key %s: %w", h.ID, h.Verify.Cosign.Key, err)
		}
		keys[h.ID] = key
	}
	return keys, nil
}

// newReview prepares pull-request write-back for a repository.
func newReview(rc config.Repo, r *gitops.Repo) (*updater.Review, error) {
	w := rc.WriteBack
	client := outbound.Client(30*time.Second, nil)
	if len(rc.Auth.CABundle) > 0 {
		client.Transport, _ = outbound.Transport(rc.Auth.CABundle) // without certificates: the system's roots, as before
	}
	f, err := forge.New(w, rc.URL, client)
	if err != nil {
		return nil, fmt.Errorf("repos[%s].writeBack: %w", rc.Name, err)
	}
	branch, err := template.New(rc.Name + "-branch").Option("missingkey=error").Parse(w.Branch)
	if err != nil {
		return nil, fmt.Errorf("repos[%s].writeBack.branch: %w", rc.Name, err)
	}
	return &updater.Review{Git: r, Forge: f, Base: rc.Branch, Branch: branch, WriteBack: w}, nil
}

// registryHosts are the only registry hosts verify and reconcile ask: those registries: lists, and
// those a hook names as its registryHost (asked anonymously unless registries: lists them too).
func registryHosts(cfg *config.Config) []oci.Host {
	var hosts []oci.Host
	listed := map[string]bool{}
	for _, r := range cfg.Registries {
		hosts = append(hosts, r)
		listed[strings.ToLower(r.Host)] = true
	}
	for _, h := range cfg.Hooks {
		if h.RegistryHost != "" && !listed[strings.ToLower(h.RegistryHost)] {
			hosts = append(hosts, oci.Host{Host: h.RegistryHost})
			listed[strings.ToLower(h.RegistryHost)] = true
		}
	}
	return hosts
}

// cachedReader reads a repository's cached tip without fetching (gitops.Repo).
type cachedReader interface {
	ReadCached(fn func(tip string, fsys fs.FS) error) error
}

// hasher names the git object under a path of a view (gitops' tree views).
type hasher interface {
	Hash(name string) (string, error)
}

// images reads the images targets hold in git now, for the status page: one read of each
// repository's cached tip per page (no fetch); at the tip last read nothing is read again, and
// at a new tip only the targets whose path holds another git object (a commit to one workload
// reads one).
type images struct {
	readers map[string]cachedReader
	mu      sync.Mutex
	// seen is, per repository, the tip last read and what each target held there.
	seen map[string]tipImages
}

type tipImages struct {
	tip     string
	targets map[string]pathImage
}

// pathImage is what one target held, and the hash of its path then ("" when unknown).
type pathImage struct {
	hash  string
	image listener.Image
}

var _ listener.Images = (*images)(nil)

func newImages(readers map[string]reconcile.Repo) *images {
	i := &images{readers: map[string]cachedReader{}, seen: map[string]tipImages{}}
	for name, r := range readers {
		if c, ok := r.(cachedReader); ok {
			i.readers[name] = c
		}
	}
	return i
}

// CurrentImages returns what git holds for each target, by target key.
func (i *images) CurrentImages(ctx context.Context, targets []event.Target) map[string]listener.Image {
	byRepo := map[string][]event.Target{}
	out := map[string]listener.Image{}
	for _, t := range targets {
		if i.readers[t.Repo] == nil || t.Container == "" {
			out[t.Key()] = listener.Image{Err: errors.New("not a workload target in a configured repository")}
			continue
		}
		byRepo[t.Repo] = append(byRepo[t.Repo], t)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for name, ts := range byRepo {
		err := i.readers[name].ReadCached(func(tip string, fsys fs.FS) error {
			last := i.seen[name]
			now := tipImages{tip: tip, targets: map[string]pathImage{}}
			h, _ := fsys.(hasher)
			for _, t := range ts {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				prev, ok := last.targets[t.Key()]
				if ok && last.tip == tip {
					now.targets[t.Key()] = prev
					continue
				}
				var hash string
				if h != nil {
					hash, _ = h.Hash(t.Path)
				}
				if !ok || hash == "" || prev.hash != hash {
					current, err := reconcile.CurrentImageIn(fsys, t)
					prev = pathImage{hash: hash, image: listener.Image{Image: current, Err: err}}
				}
				now.targets[t.Key()] = prev
			}
			i.seen[name] = now
			for k, p := range now.targets {
				out[k] = p.image
			}
			return nil
		})
		if err != nil {
			for _, t := range ts {
				out[t.Key()] = listener.Image{Err: err}
			}
		}
	}
	return out
}

// stageReader reads stages' values in git for promotion's holds.
type stageReader struct {
	readers map[string]reconcile.Repo
	repos   map[string]*gitops.Repo
}

// Current reads the target's value at the branch tip, fetched first: a person's change must be
// seen before a promotion overwrites it.
func (s stageReader) Current(ctx context.Context, t event.Target) (string, error) {
	repo := s.readers[t.Repo]
	if repo == nil {
		return "", errors.New("not a target in a configured repository")
	}
	return reconcile.CurrentImage(ctx, repo, t)
}

func (s stageReader) LastChange(_ context.Context, repo, file string) (gitops.LogCommit, bool, bool, error) {
	r := s.repos[repo]
	if r == nil {
		return gitops.LogCommit{}, false, false, fmt.Errorf("no repository %q", repo)
	}
	// A person's change is usually among the last commits; older ones are reported unnamed.
	c, found, err := r.LastChange(file, 200)
	id := r.Identity()
	return c, found, found && c.Committer.Name == id.Name && strings.EqualFold(c.Committer.Email, id.Email), err
}

// stageNotifier is a notifier that tells people about promotion stages. Each decides whom a
// notice reaches (a chat robot when the stage names it, mail its recipients and the candidate's
// hook's, the log prints it) and delivers it without holding up the promotion pass.
type stageNotifier interface {
	AnnounceStage(ctx context.Context, notifiers []string, m *event.Mail, n notify.Notice)
}

var (
	_ stageNotifier = (*chat.Notifier)(nil)
	_ stageNotifier = (*mail.Notifier)(nil)
	_ stageNotifier = notify.Log{}
)

// stageAnnouncer delivers promotion's notices through every configured notifier that announces
// stages.
type stageAnnouncer struct {
	members notify.All
}

func (a stageAnnouncer) Announce(ctx context.Context, notifiers []string, m *event.Mail, n notify.Notice) {
	for _, member := range a.members {
		if s, ok := member.(stageNotifier); ok {
			s.AnnounceStage(ctx, notifiers, m, n)
		}
	}
}
