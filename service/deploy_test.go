package service

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/deploy"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/kubetest"
)

// crd is a faithful subset of a GitOps tool's published CRD: its group, kind and scope, with the
// spec and status left open (the real schemas are large; imagehook reads a handful of fields).
func crd(group, kind, plural string, statusSubresource bool) *unstructured.Unstructured {
	version := map[string]any{"name": "v1alpha1", "served": true, "storage": true,
		"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
	if statusSubresource {
		version["subresources"] = map[string]any{"status": map[string]any{}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{"group": group, "scope": "Namespaced", "versions": []any{version},
			"names": map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind), "listKind": kind + "List"}},
	}}
}

// websiteCluster starts a real kube-apiserver with the CRDs and namespaces given and the website
// Deployment in namespace web, its rollout complete (no controllers run here; the rollout check
// itself is direct apply's and tested there). It returns a dynamic client and a kubeconfig file.
func websiteCluster(t *testing.T, crds []*unstructured.Unstructured, namespaces ...string) (*dynamic.DynamicClient, string) {
	t.Helper()
	env, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(env.Admin)
	dyn := dynamic.NewForConfigOrDie(env.Admin)
	defs := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, c := range crds {
		if _, err := defs.Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range namespaces {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "website"}}
	dep, err := kube.AppsV1().Deployments("web").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "website", Namespace: "web"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel.MatchLabels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "website", Image: "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
	if _, err := kube.AppsV1().Deployments("web").UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := kubetest.WriteKubeconfig(t.TempDir(), env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return dyn, kubeconfig
}

// TestDeployTracking follows pushed commits on a real kube-apiserver, with the test playing Argo CD
// and Fleet by writing the status fields their controllers write: synced and healthy → succeeded,
// with the synced and ready times; a failed sync → failed with Argo CD's message; a descendant
// synced → succeeded; no application for the files → unknown; nothing synced → failed after the
// timeout.
func TestDeployTracking(t *testing.T) {
	ctx := context.Background()
	dyn, kubeconfig := websiteCluster(t, []*unstructured.Unstructured{crd("argoproj.io", "Application", "applications", false), crd("fleet.cattle.io", "GitRepo", "gitrepos", true)},
		"web", "argocd", "fleet-default")
	hooks := `  - id: tracked
    token: ${HOOK_TOKEN}
    source: dockerhub
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`
	h := newHarnessHooks(t, hooks, fmt.Sprintf("clusters: [{name: prod, kubeconfig: %s}]", kubeconfig))
	// The watch is added to the repository the harness wrote, and imagehook started again with it.
	h.stop()
	h.cfg.Repos[0].Watch = &config.Watch{Cluster: "prod", ArgoCD: config.Namespace{Namespace: "argocd"},
		Fleet: config.Namespace{Namespace: "fleet-default"}, Timeout: config.Duration(3 * time.Second)}
	h.start()

	repoURL := h.cfg.Repos[0].URL
	apps := dyn.Resource(deploy.Applications).Namespace("argocd")
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": map[string]any{"name": "website", "namespace": "argocd"},
		// Another spelling of the same repository: no .git, a trailing slash.
		"spec": map[string]any{"source": map[string]any{"repoURL": strings.TrimSuffix(repoURL, ".git") + "/", "path": "apps/website", "targetRevision": "main"},
			"destination": map[string]any{"namespace": "web", "server": "https://kubernetes.default.svc"}},
	}}
	if _, err := apps.Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// argo plays Argo CD's controller: the application's status once it has synced rev.
	// imagehook's refresh annotation may land between the read and the write: read again then,
	// as a controller does.
	argo := func(rev, phase, message, health string) {
		t.Helper()
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := apps.Get(ctx, "website", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Object["status"] = map[string]any{
				"sync":           map[string]any{"status": "Synced", "revision": rev},
				"health":         map[string]any{"status": health, "message": "Deployment website: " + strings.ToLower(health)},
				"operationState": map[string]any{"phase": phase, "message": message, "syncResult": map[string]any{"revision": rev}},
			}
			_, err = apps.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	push := func(tag string) (string, string) {
		t.Helper()
		body := []byte(`{"push_data":{"tag":"` + tag + `"},"repository":{"repo_name":"imagehook-demo/website"}}`)
		code, ev := h.post("/hooks/tracked?token="+hookToken, body)
		if code != http.StatusAccepted {
			t.Fatalf("push %s: %d %v", tag, code, ev)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if strings.Contains(h.gitOut("show", "main:apps/website/deployment.yaml"), "website:"+tag) {
				return fmt.Sprint(ev["id"]), h.gitOut("rev-parse", "main")
			}
			if time.Now().After(deadline) {
				t.Fatalf("push %s not committed:\n%s", tag, h.logs.String())
			}
		}
	}
	done := func(id string) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+id, nil)
			_, ev := h.do(req)
			if s := fmt.Sprint(ev["status"]); s != "running" && s != "queued" {
				return ev
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s still %v", id, ev["status"])
			}
		}
	}

	// Synced and healthy.
	id, commit := push("5.0.0")
	argo(commit, "Succeeded", "successfully synced (all tasks run)", "Healthy")
	ev := done(id)
	st := step(ev, "deploy")
	if ev["status"] != "succeeded" || st["status"] != "succeeded" || st["syncedAt"] == nil || st["readyAt"] == nil ||
		!strings.Contains(fmt.Sprint(st["detail"]), "argocd/argocd/website synced "+commit[:12]) {
		t.Fatalf("synced: %v", ev)
	}
	// Argo CD was asked to look now (watch.refresh's default), and the step says when.
	if cur, err := apps.Get(ctx, "website", metav1.GetOptions{}); err != nil || cur.GetAnnotations()[deploy.ArgoRefreshAnnotation] != "normal" || st["refreshedAt"] == nil {
		t.Errorf("refresh: annotations %v (%v), step %v", cur.GetAnnotations(), err, st)
	}

	// A sync that fails: Argo CD's own message.
	id, commit = push("5.1.0")
	argo(commit, "Failed", `one or more objects failed to apply, reason: Deployment.apps "website" is invalid`, "Healthy")
	ev = done(id)
	if ev["status"] != "failed" || !strings.Contains(fmt.Sprint(step(ev, "deploy")["error"]), `sync failed: one or more objects failed to apply`) {
		t.Fatalf("failed sync: %v", ev)
	}

	// A newer commit synced first: the event's commit is in its history, so it is deployed.
	id, commit = push("5.2.0")
	work := t.TempDir()
	gitserver.Git(t, work, "clone", "-q", h.git.Bare("apps"), ".")
	if err := os.WriteFile(filepath.Join(work, "NOTES.md"), []byte("later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "add", "NOTES.md")
	gitserver.Git(t, work, "commit", "-q", "-m", "a later commit")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	later := gitserver.Git(t, work, "rev-parse", "HEAD")
	argo(later, "Succeeded", "successfully synced", "Healthy")
	if ev = done(id); ev["status"] != "succeeded" || !strings.Contains(fmt.Sprint(step(ev, "deploy")["detail"]), later[:12]) {
		t.Fatalf("descendant: %v (commit %s, later %s)", ev, commit, later)
	}

	// Nothing synces: failed after the timeout, naming the application.
	id, _ = push("5.3.0")
	if ev = done(id); ev["status"] != "failed" || !strings.Contains(fmt.Sprint(step(ev, "deploy")["error"]), "argocd/argocd/website not synced after 3s") {
		t.Fatalf("timeout: %v", ev)
	}

	// Fleet deploys the files instead: GitRepo status commit, Ready, all bundles ready.
	if err := apps.Delete(ctx, "website", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gitrepos := dyn.Resource(deploy.GitRepos).Namespace("fleet-default")
	gr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo", "metadata": map[string]any{"name": "apps", "namespace": "fleet-default"},
		"spec": map[string]any{"repo": repoURL, "branch": "main", "paths": []any{"apps"}},
	}}
	if _, err := gitrepos.Create(ctx, gr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	id, commit = push("5.4.0")
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := gitrepos.Get(ctx, "apps", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Object["status"] = map[string]any{"commit": commit, "summary": map[string]any{"desiredReady": int64(1), "ready": int64(1)},
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}
		_, err = gitrepos.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if ev = done(id); ev["status"] != "succeeded" || !strings.Contains(fmt.Sprint(step(ev, "deploy")["detail"]), "fleet/fleet-default/apps") {
		t.Fatalf("fleet: %v", ev)
	}

	// No application deploys these files: unknown, and the event still succeeds.
	if err := gitrepos.Delete(ctx, "apps", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	id, _ = push("5.5.0")
	if ev = done(id); ev["status"] != "succeeded" || step(ev, "deploy")["status"] != "unknown" {
		t.Fatalf("unknown: %v", ev)
	}
	resp, err := http.Get("http://" + h.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := string(metrics); !strings.Contains(m, `imagehook_push_to_ready_seconds_count{hook="tracked"} 3`) {
		t.Errorf("metrics lack push-to-ready:\n%s", m)
	}
}
