// Package deploy follows a pushed commit until it runs: it finds the Argo CD Applications and Fleet
// GitRepos that deploy the changed files, asks their tool to look at the repository now
// (watch.refresh), watches them until their tool has synced that commit (or a descendant)
// healthily, then waits for the workloads to roll out — the same check direct apply makes.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/imagehook/imagehook/cluster"
	"github.com/imagehook/imagehook/deploy/deployconfig"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/gitops/gitopsconfig"
)

// The GitOps tools' resources: read, and written only to ask them to look now (watch.refresh).
var (
	Applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	GitRepos     = schema.GroupVersionResource{Group: "fleet.cattle.io", Version: "v1alpha1", Resource: "gitrepos"}
)

// History answers whether one commit has another in its history (gitops.Repo).
type History interface {
	Descends(ctx context.Context, descendant, ancestor string) (bool, error)
}

// Watch is one repository's watch: section of the config file (its type lives in deployconfig, so
// that package config need not import client-go).
type Watch = deployconfig.Watch

// Repo is the manifests repository's section (repos[]): applications name it by its clone URL
// and branch.
type Repo = gitopsconfig.Repo

// Tracker follows one repository's commits on one cluster.
type Tracker struct {
	cluster *cluster.Cluster
	watch   Watch
	repo    Repo
	timeout time.Duration
	history History
	// metrics, when set, records each commit's sync start.
	metrics *Metrics
	log     *slog.Logger
}

// New returns a tracker of repo's commits on c, as its watch: section says; metrics may be nil.
func New(c *cluster.Cluster, w Watch, repo Repo, metrics *Metrics, history History, log *slog.Logger) *Tracker {
	timeout := time.Duration(w.Timeout)
	if timeout == 0 {
		timeout = 15 * time.Minute
	}
	return &Tracker{cluster: c, watch: w, repo: repo, timeout: timeout, history: history, metrics: metrics, log: log}
}

// app is one application that deploys some of the changed files.
type app struct {
	tool, namespace, name string
}

func (a app) String() string { return a.tool + "/" + a.namespace + "/" + a.name }

// Track follows commit (which changed files, rewriting changes) until it is deployed and the
// workloads are ready, and returns the deploy step. The context ending (a shutdown) is returned as
// an error, so that the event is followed again after a restart.
func (t *Tracker) Track(ctx context.Context, commit string, files []string, changes []event.Change) (event.Step, error) {
	st := event.Step{Name: event.StepDeploy, Commit: commit, At: time.Now()}
	// A tool's status message can be any size (a sync of many objects quotes them all): the step
	// stores it bounded by the one rule for peers' texts.
	fail := func(msg string) (event.Step, error) {
		st.Status, st.Error = event.Failed, event.Cut(msg)
		return st, nil
	}
	apps, err := t.find(ctx, files)
	if err != nil {
		return fail(err.Error())
	}
	if len(apps) == 0 {
		st.Status, st.Detail = event.Unknown, "no Argo CD Application or Fleet GitRepo deploys these files"
		return st, nil
	}
	for _, a := range apps {
		st.Apps = append(st.Apps, a.String())
	}
	var note string
	if t.watch.Refreshes() {
		note = t.refresh(ctx, apps, commit, &st)
	}
	// Every outcome keeps what the refresh said.
	fail = func(msg string) (event.Step, error) {
		st.Status, st.Error, st.Detail = event.Failed, event.Cut(msg), note
		return st, nil
	}
	deadline := time.Now().Add(t.timeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	revs := map[string]string{}
	var started time.Time
	for _, a := range apps {
		var seen time.Time
		rev, err := t.waitSynced(wctx, a, commit, &seen)
		if seen.After(started) {
			started = seen
		}
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%s not synced after %s", a, t.timeout)
		}
		if err != nil {
			return fail(err.Error())
		}
		revs[a.String()] = rev
	}
	st.SyncedAt = time.Now()
	if !started.IsZero() {
		st.SyncStartedAfter = started.Sub(st.At).Seconds()
		t.metrics.observe(st.SyncStartedAfter, !st.RefreshedAt.IsZero())
	}
	for _, c := range changes {
		kind, name, ok := strings.Cut(c.Workload, "/")
		if !ok || c.Namespace == "" || !c.Changed() {
			continue
		}
		if err := t.cluster.WaitRollout(wctx, kind, c.Namespace, name, time.Until(deadline)); err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return fail("synced, but " + err.Error())
		}
	}
	st.ReadyAt = time.Now()
	st.Status = event.Succeeded
	var parts []string
	for _, a := range st.Apps {
		parts = append(parts, fmt.Sprintf("%s synced %.12s", a, revs[a]))
	}
	st.Detail = strings.Join(parts, "; ") + "; workloads ready"
	if note != "" {
		st.Detail += "; " + note
	}
	return st, nil
}

// refreshTimeout bounds each refresh request.
const refreshTimeout = 10 * time.Second

// refresh asks each application's tool to look at the repository now — Argo CD through its
// documented refresh annotation (argocd.argoproj.io/refresh: normal, which its controller acts on
// and removes), Fleet as its own webhook receiver does (the GitRepo's status.webhookCommit and
// lastWebhookTime: Fleet then resolves the branch's head at once instead of at its next poll).
// A refusal never fails the step: it is recorded with a typed reason, and the returned note says
// which applications sync at their next poll instead.
func (t *Tracker) refresh(ctx context.Context, apps []app, commit string, st *event.Step) string {
	var failed []string
	asked := false
	for _, a := range apps {
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		err := t.poke(rctx, a, commit)
		cancel()
		if err == nil {
			asked = true
			continue
		}
		reason := event.ReasonRefreshFailed
		if apierrors.IsForbidden(err) {
			reason = event.ReasonRefreshDenied
		}
		if st.Reason != event.ReasonRefreshDenied {
			st.Reason = reason
		}
		t.log.Warn("deploy: the GitOps tool was not asked to look now", "app", a.String(), "reason", reason, "err", err)
		failed = append(failed, fmt.Sprintf("%s: %v", a, err))
	}
	if asked {
		st.RefreshedAt = time.Now()
	}
	if len(failed) == 0 {
		return ""
	}
	// The API server's refusals quote names a peer chose: bounded by the one rule for peers' texts.
	return event.Cut("not asked to look now, so synced at the tool's next poll: " + strings.Join(failed, "; "))
}

// poke makes one application's tool look now.
func (t *Tracker) poke(ctx context.Context, a app, commit string) error {
	dyn := t.cluster.Dynamic()
	opts := metav1.PatchOptions{FieldManager: "imagehook"}
	if a.tool == "fleet" {
		patch, err := json.Marshal(map[string]any{"status": map[string]any{
			"webhookCommit": commit, "lastWebhookTime": time.Now().UTC().Format(time.RFC3339)}})
		if err != nil {
			return err
		}
		_, err = dyn.Resource(GitRepos).Namespace(a.namespace).Patch(ctx, a.name, types.MergePatchType, patch, opts, "status")
		return err
	}
	patch := []byte(`{"metadata":{"annotations":{"` + ArgoRefreshAnnotation + `":"normal"}}}`)
	_, err := dyn.Resource(Applications).Namespace(a.namespace).Patch(ctx, a.name, types.MergePatchType, patch, opts)
	return err
}

// ArgoRefreshAnnotation is Argo CD's documented refresh request on an Application.
const ArgoRefreshAnnotation = "argocd.argoproj.io/refresh"

// find lists the applications whose source is this repository and branch and whose path holds one
// of the files.
func (t *Tracker) find(ctx context.Context, files []string) ([]app, error) {
	var out []app
	dyn := t.cluster.Dynamic()
	want := NormalizeRepoURL(t.repo.URL)
	if ns := t.watch.ArgoCD.Namespace; ns != "" {
		list, err := dyn.Resource(Applications).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list Argo CD applications in %s: %w", ns, err)
		}
		for _, u := range list.Items {
			for _, src := range argoSources(u.Object) {
				repo, _ := src["repoURL"].(string)
				p, _ := src["path"].(string)
				rev, _ := src["targetRevision"].(string)
				if NormalizeRepoURL(repo) == want && t.branchMatches(rev, "HEAD") && anyUnder(files, []string{p}) {
					out = append(out, app{tool: "argocd", namespace: ns, name: u.GetName()})
					break
				}
			}
		}
	}
	if ns := t.watch.Fleet.Namespace; ns != "" {
		list, err := dyn.Resource(GitRepos).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list Fleet GitRepos in %s: %w", ns, err)
		}
		for _, u := range list.Items {
			repo, _, _ := unstructured.NestedString(u.Object, "spec", "repo")
			branch, _, _ := unstructured.NestedString(u.Object, "spec", "branch")
			pinned, _, _ := unstructured.NestedString(u.Object, "spec", "revision")
			paths, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "paths")
			if len(paths) == 0 {
				paths = []string{""}
			}
			// Fleet's default branch is master.
			if NormalizeRepoURL(repo) == want && pinned == "" && t.branchMatches(branch, "master") && anyUnder(files, paths) {
				out = append(out, app{tool: "fleet", namespace: ns, name: u.GetName()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func argoSources(obj map[string]any) []map[string]any {
	var out []map[string]any
	if s, ok, _ := unstructured.NestedMap(obj, "spec", "source"); ok {
		out = append(out, s)
	}
	list, _, _ := unstructured.NestedSlice(obj, "spec", "sources")
	for _, s := range list {
		if m, ok := s.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// branchMatches says whether an application's revision follows the repository's branch; def is
// what an empty revision means to its tool.
func (t *Tracker) branchMatches(rev, def string) bool {
	if rev == "" {
		rev = def
	}
	rev = strings.TrimPrefix(rev, "refs/heads/")
	return rev == t.repo.Branch || rev == "HEAD"
}

// anyUnder reports whether a file lies under one of the directories ("", "." and "/" are the root).
func anyUnder(files, dirs []string) bool {
	for _, d := range dirs {
		d = strings.Trim(path.Clean("/"+d), "/")
		for _, f := range files {
			if d == "" || f == d || strings.HasPrefix(f, d+"/") {
				return true
			}
		}
	}
	return false
}

// NormalizeRepoURL reduces the spellings of one repository to one: scheme, user, ".git", a
// trailing slash and git@host:path against ssh://git@host/path do not matter; host case does not.
func NormalizeRepoURL(raw string) string {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		if at, rest, ok := strings.Cut(s, ":"); ok && strings.Contains(at, "@") {
			_, host, _ := strings.Cut(at, "@")
			s = "ssh://" + host + "/" + strings.TrimPrefix(rest, "/")
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git"))
	}
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && p != "443" && p != "80" && p != "22" {
		host += ":" + p
	}
	return host + "/" + strings.TrimSuffix(strings.TrimSuffix(strings.Trim(u.Path, "/"), "/"), ".git")
}

// waitSynced watches an application until its tool reports commit (or a descendant) deployed and
// healthy, and returns the revision it synced. A sync that failed, or a degraded application, on
// that revision is an error carrying the tool's own message.
func (t *Tracker) waitSynced(ctx context.Context, a app, commit string, started *time.Time) (string, error) {
	res := Applications
	if a.tool == "fleet" {
		res = GitRepos
	}
	client := t.cluster.Dynamic().Resource(res).Namespace(a.namespace)
	for {
		obj, err := client.Get(ctx, a.name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("get %s: %w", a, err)
		}
		t.noteStart(ctx, a, obj, commit, started)
		if rev, done, err := t.judge(ctx, a, obj, commit); done || err != nil {
			return rev, err
		}
		w, err := client.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + a.name, ResourceVersion: obj.GetResourceVersion()})
		if err != nil {
			return "", fmt.Errorf("watch %s: %w", a, err)
		}
		rev, done, err := t.follow(ctx, a, w, commit, started)
		w.Stop()
		if done || err != nil {
			return rev, err
		}
		// The watch ended (the API server closes them now and then): read again and watch anew.
	}
}

func (t *Tracker) follow(ctx context.Context, a app, w watch.Interface, commit string, started *time.Time) (string, bool, error) {
	for {
		select {
		case <-ctx.Done():
			return "", false, ctx.Err()
		case e, ok := <-w.ResultChan():
			if !ok {
				return "", false, nil
			}
			obj, isObj := e.Object.(*unstructured.Unstructured)
			if !isObj || (e.Type != watch.Modified && e.Type != watch.Added) {
				continue
			}
			t.noteStart(ctx, a, obj, commit, started)
			if rev, done, err := t.judge(ctx, a, obj, commit); done || err != nil {
				return rev, done, err
			}
		}
	}
}

// noteStart records when an application's tool is first seen at work on commit (or a
// descendant): Fleet's GitRepo names it as its commit, Argo CD's Application as its sync
// revision or its running operation's.
func (t *Tracker) noteStart(ctx context.Context, a app, obj *unstructured.Unstructured, commit string, started *time.Time) {
	if !started.IsZero() {
		return
	}
	str := func(p ...string) string { s, _, _ := unstructured.NestedString(obj.Object, p...); return s }
	revs := []string{str("status", "commit")}
	if a.tool == "argocd" {
		revs = []string{str("status", "sync", "revision"), str("status", "operationState", "syncResult", "revision"),
			str("status", "operationState", "operation", "sync", "revision")}
		more, _, _ := unstructured.NestedStringSlice(obj.Object, "status", "sync", "revisions")
		revs = append(revs, more...)
	}
	for _, rev := range revs {
		if rev == "" {
			continue
		}
		if ok, _ := t.history.Descends(ctx, rev, commit); ok {
			*started = time.Now()
			return
		}
	}
}

// judge reads one state of an application: done (deployed and healthy), failed, or still on its way.
func (t *Tracker) judge(ctx context.Context, a app, obj *unstructured.Unstructured, commit string) (string, bool, error) {
	str := func(p ...string) string { s, _, _ := unstructured.NestedString(obj.Object, p...); return s }
	ours := func(rev string) bool {
		if rev == "" {
			return false
		}
		ok, err := t.history.Descends(ctx, rev, commit)
		if err != nil {
			t.log.Debug("deploy: compare revisions", "app", a.String(), "revision", rev, "err", err)
		}
		return ok
	}
	if a.tool == "fleet" {
		rev := str("status", "commit")
		if !ours(rev) {
			return "", false, nil
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		ready := false
		for _, c := range conds {
			m, _ := c.(map[string]any)
			switch {
			case m["type"] == "Ready" && m["status"] == "True":
				ready = true
			case m["type"] == "Stalled" && m["status"] == "True":
				return rev, false, fmt.Errorf("%s stalled: %v", a, m["message"])
			}
		}
		want, _, _ := unstructured.NestedInt64(obj.Object, "status", "summary", "desiredReady")
		got, _, _ := unstructured.NestedInt64(obj.Object, "status", "summary", "ready")
		return rev, ready && got == want, nil
	}
	rev := str("status", "sync", "revision")
	if rev == "" {
		revs, _, _ := unstructured.NestedStringSlice(obj.Object, "status", "sync", "revisions")
		for _, r := range revs {
			if ours(r) {
				rev = r
			}
		}
	}
	opRev := str("status", "operationState", "syncResult", "revision")
	switch phase := str("status", "operationState", "phase"); {
	case (phase == "Failed" || phase == "Error") && ours(opRev):
		return opRev, false, fmt.Errorf("%s: sync %s: %s", a, strings.ToLower(phase), str("status", "operationState", "message"))
	case phase == "Running" || phase == "Terminating":
		return "", false, nil
	}
	if !ours(rev) {
		return "", false, nil
	}
	if h := str("status", "health", "status"); h == "Degraded" {
		return rev, false, fmt.Errorf("%s: health degraded: %s", a, str("status", "health", "message"))
	}
	return rev, str("status", "sync", "status") == "Synced" && str("status", "health", "status") == "Healthy", nil
}
