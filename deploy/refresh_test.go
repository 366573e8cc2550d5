package deploy

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/imagehook/imagehook/cluster"
	"github.com/imagehook/imagehook/deploy/deployconfig"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/confyaml"
	"github.com/imagehook/imagehook/internal/kubetest"
	"github.com/imagehook/imagehook/internal/manifesttest"
)

// sameCommit is the repository's history as far as these tests need it: a commit descends from
// itself only.
type sameCommit struct{}

func (sameCommit) Descends(_ context.Context, d, a string) (bool, error) { return d == a, nil }

const repoURL = "https://git.example.com/platform/apps.git"

// obj builds an unstructured object.
func obj(apiVersion, kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec}}
}

// until polls cond until it holds or the deadline passes.
func until(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}

// TestRefreshAfterPush runs on a real kube-apiserver with Argo CD's and Fleet's CRDs, the test
// playing their controllers: after a push, the Application that deploys the files gets Argo CD's
// refresh annotation and the GitRepo Fleet's webhook commit within a second, and the ones that
// deploy other files or another repository get nothing; the step records when the tools were
// asked and when they started syncing. With refresh off nothing is written. When RBAC forbids
// the patch (the service account may only read), the step says so with a typed reason and the
// update still succeeds.
func TestRefreshAfterPush(t *testing.T) {
	env, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(env.Admin)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, c := range manifesttest.GitOpsCRDs() {
		if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: c}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	namespaces := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	for _, ns := range []string{"argocd", "fleet-default"} {
		if _, err := namespaces.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	apps, gitrepos := dyn.Resource(Applications).Namespace("argocd"), dyn.Resource(GitRepos).Namespace("fleet-default")
	argoApp := func(name, path string) *unstructured.Unstructured {
		return obj("argoproj.io/v1alpha1", "Application", "argocd", name, map[string]any{
			"source": map[string]any{"repoURL": repoURL, "path": path, "targetRevision": "main"}})
	}
	// The CRDs serve once established: the first create is retried until then.
	until(t, 30*time.Second, "CRDs established", func() bool {
		_, err := apps.Create(ctx, argoApp("website", "apps/website"), metav1.CreateOptions{})
		return err == nil
	})
	if _, err := apps.Create(ctx, argoApp("billing", "apps/billing"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, repo := range map[string]string{"apps": repoURL, "other": "https://git.example.com/platform/other.git"} {
		until(t, 30*time.Second, "GitRepo created", func() bool {
			_, err := gitrepos.Create(ctx, obj("fleet.cattle.io/v1alpha1", "GitRepo", "fleet-default", name,
				map[string]any{"repo": repo, "branch": "main", "paths": []any{"apps"}}), metav1.CreateOptions{})
			return err == nil
		})
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	tracker := func(cfg *rest.Config, refresh bool) *Tracker {
		c, err := cluster.New("prod", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		w := Watch{ArgoCD: deployconfig.Namespace{Namespace: "argocd"}, Fleet: deployconfig.Namespace{Namespace: "fleet-default"},
			Timeout: confyaml.Duration(20 * time.Second), Refresh: &refresh}
		return New(c, w, Repo{URL: repoURL, Branch: "main"}, metrics, sameCommit{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	annotation := func(name string) string {
		u, err := apps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return u.GetAnnotations()[ArgoRefreshAnnotation]
	}
	webhookCommit := func(name string) string {
		u, err := gitrepos.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, _, _ := unstructured.NestedString(u.Object, "status", "webhookCommit")
		return s
	}
	// synced plays Argo CD and Fleet having deployed commit.
	synced := func(commit string) {
		t.Helper()
		app, err := apps.Get(ctx, "website", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		app.Object["status"] = map[string]any{"sync": map[string]any{"status": "Synced", "revision": commit},
			"health": map[string]any{"status": "Healthy"}, "operationState": map[string]any{"phase": "Succeeded", "syncResult": map[string]any{"revision": commit}}}
		if _, err := apps.Update(ctx, app, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		gr, err := gitrepos.Get(ctx, "apps", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		status, _, _ := unstructured.NestedMap(gr.Object, "status")
		if status == nil {
			status = map[string]any{}
		}
		status["commit"], status["summary"] = commit, map[string]any{"desiredReady": int64(1), "ready": int64(1)}
		status["conditions"] = []any{map[string]any{"type": "Ready", "status": "True"}}
		gr.Object["status"] = status
		if _, err := gitrepos.UpdateStatus(ctx, gr, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{"apps/website/deployment.yaml"}
	type result struct {
		st  event.Step
		err error
	}
	track := func(tr *Tracker, commit string) <-chan result {
		done := make(chan result, 1)
		go func() {
			st, err := tr.Track(ctx, commit, files, nil)
			done <- result{st, err}
		}()
		return done
	}
	wait := func(done <-chan result) event.Step {
		t.Helper()
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.st
		case <-time.After(30 * time.Second):
			t.Fatal("Track did not return")
		}
		return event.Step{}
	}

	t.Run("asked within a second, only the right ones", func(t *testing.T) {
		pushed := time.Now()
		done := track(tracker(env.Admin, true), "c0ffee1")
		until(t, 10*time.Second, "the refresh annotation", func() bool { return annotation("website") == "normal" })
		until(t, 10*time.Second, "the webhook commit", func() bool { return webhookCommit("apps") == "c0ffee1" })
		if took := time.Since(pushed); took > time.Second {
			t.Errorf("the tools were asked %s after the push", took)
		}
		if a, w := annotation("billing"), webhookCommit("other"); a != "" || w != "" {
			t.Errorf("asked an application deploying other files (%q) or another repository (%q)", a, w)
		}
		synced("c0ffee1")
		st := wait(done)
		if st.Status != event.Succeeded || st.Reason != "" || st.RefreshedAt.IsZero() || st.RefreshedAt.Sub(pushed) > time.Second || st.SyncStartedAfter <= 0 ||
			len(st.Apps) != 2 || strings.Contains(st.Detail, "not asked") {
			t.Fatalf("step: %+v", st)
		}
	})

	t.Run("refresh off writes nothing", func(t *testing.T) {
		app, _ := apps.Get(ctx, "website", metav1.GetOptions{})
		app.SetAnnotations(nil)
		if _, err := apps.Update(ctx, app, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		synced("c0ffee2")
		st := wait(track(tracker(env.Admin, false), "c0ffee2"))
		if st.Status != event.Succeeded || !st.RefreshedAt.IsZero() || st.Reason != "" {
			t.Fatalf("step: %+v", st)
		}
		if a, w := annotation("website"), webhookCommit("apps"); a != "" || w != "c0ffee1" {
			t.Errorf("written with refresh off: annotation %q, webhook commit %q", a, w)
		}
	})

	t.Run("RBAC denial is reported, and the update succeeds", func(t *testing.T) {
		// imagehook's service account as the read-only example grants it: get, list, watch.
		rbac := func(resource string) schema.GroupVersionResource {
			return schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: resource}
		}
		for ns, rule := range map[string]map[string]any{
			"argocd":        {"apiGroups": []any{"argoproj.io"}, "resources": []any{"applications"}, "verbs": []any{"get", "list", "watch"}},
			"fleet-default": {"apiGroups": []any{"fleet.cattle.io"}, "resources": []any{"gitrepos"}, "verbs": []any{"get", "list", "watch"}},
		} {
			role := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
				"metadata": map[string]any{"name": "imagehook-watch", "namespace": ns}, "rules": []any{rule}}}
			if _, err := dyn.Resource(rbac("roles")).Namespace(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			binding := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
				"metadata": map[string]any{"name": "imagehook-watch", "namespace": ns},
				"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "imagehook-watch"},
				"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "imagehook"}}}}
			if _, err := dyn.Resource(rbac("rolebindings")).Namespace(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		reader := rest.CopyConfig(env.Admin)
		reader.Impersonate = rest.ImpersonationConfig{UserName: "imagehook"}
		readerDyn := dynamic.NewForConfigOrDie(reader)
		until(t, 30*time.Second, "the role in force", func() bool {
			_, err1 := readerDyn.Resource(Applications).Namespace("argocd").List(ctx, metav1.ListOptions{})
			_, err2 := readerDyn.Resource(GitRepos).Namespace("fleet-default").List(ctx, metav1.ListOptions{})
			return err1 == nil && err2 == nil
		})
		synced("c0ffee3")
		st := wait(track(tracker(reader, true), "c0ffee3"))
		if st.Status != event.Succeeded || st.Reason != event.ReasonRefreshDenied || !st.RefreshedAt.IsZero() ||
			!strings.Contains(st.Detail, "not asked to look now") || !strings.Contains(st.Detail, "argocd/argocd/website") ||
			!strings.Contains(st.Detail, "fleet/fleet-default/apps") || !strings.Contains(st.Detail, "forbidden") {
			t.Fatalf("step: %+v", st)
		}
		if w := webhookCommit("apps"); w != "c0ffee1" {
			t.Errorf("written despite RBAC: %q", w)
		}
	})

	// The sync start is measured by whether the tool was asked: once asked, twice not.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		if f.GetName() == "imagehook_push_to_sync_start_seconds" {
			for _, m := range f.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	if counts["asked"] != 1 || counts["not asked"] != 2 {
		t.Errorf("imagehook_push_to_sync_start_seconds counts %v, want asked 1, not asked 2", counts)
	}
}
