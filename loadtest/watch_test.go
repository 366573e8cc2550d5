//go:build loadtest

package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/imagehook/imagehook/deploy"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/kubetest"
)

// TestWatchOverhead measures webhook → pushed with deploy tracking off and on, in the same run: with
// watch on, every commit is followed (here by an Argo CD Application that never syncs, so that the
// follows pile up, one open watch per commit), and the push path must not slow down. With watch on
// it also measures push → Argo CD's refresh annotation on the Application (watch.refresh), the
// bench playing Argo CD's controller by removing the annotation once seen.
func TestWatchOverhead(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS not set (make bench sets it)")
	}
	env, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(env.Admin)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": map[string]any{"name": "applications.argoproj.io"},
		"spec": map[string]any{"group": "argoproj.io", "scope": "Namespaced", "names": map[string]any{"kind": "Application", "plural": "applications", "singular": "application", "listKind": "ApplicationList"},
			"versions": []any{map[string]any{"name": "v1alpha1", "served": true, "storage": true, "schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := kubetest.WriteKubeconfig(t.TempDir(), env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	for _, watch := range []bool{false, true} {
		git := gitserver.New(t, "bench", "bench-pw")
		url := git.NewRepo(t, "apps", examples.Manifests())
		if watch {
			if _, err := kubeCreateNS(ctx, dyn, "argocd"); err != nil {
				t.Fatal(err)
			}
			if _, err := dyn.Resource(deploy.Applications).Namespace("argocd").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": map[string]any{"name": "website"},
				"spec": map[string]any{"source": map[string]any{"repoURL": url, "path": "apps", "targetRevision": "main"}},
			}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		port := freePort(t)
		dir := t.TempDir()
		repo := fmt.Sprintf("{name: apps, url: %s, auth: {username: bench, password: bench-pw}}", url)
		clusters := ""
		if watch {
			repo = strings.TrimSuffix(repo, "}") + ", watch: {cluster: prod, argocd: {namespace: argocd}, timeout: 10m}}"
			clusters = fmt.Sprintf("clusters: [{name: prod, kubeconfig: %s}]\n", kubeconfig)
		}
		cfg := fmt.Sprintf("listen: \"127.0.0.1:%d\"\ndataDir: %s/data\n%srepos: [%s]\nhooks:\n  - id: web\n    token: %s\n    source: dockerhub\n    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]\n",
			port, dir, clusters, repo, token)
		cfgPath := dir + "/imagehook.yaml"
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c := &client{http: &http.Client{Timeout: 30 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
		proc := startImagehook(t, bin, cfgPath, c)
		var pushed, refreshed []time.Duration
		apps := dyn.Resource(deploy.Applications).Namespace("argocd")
		for i := range 40 {
			code, ev, err := c.post("/hooks/web?token="+token, []byte(fmt.Sprintf(`{"push_data":{"tag":"9.0.%d"},"repository":{"repo_name":"imagehook-demo/website"}}`, i)))
			if err != nil || code != http.StatusAccepted {
				t.Fatalf("post: %d %v %v", code, ev, err)
			}
			id := fmt.Sprint(ev["id"])
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if d, at, ok := pushedAfter(c, id); ok {
					pushed = append(pushed, d)
					if watch {
						refreshed = append(refreshed, awaitRefresh(ctx, t, apps, at))
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("event %s not pushed", id)
				}
			}
		}
		_ = proc.Process.Kill()
		_ = proc.Wait()
		sort.Slice(pushed, func(i, j int) bool { return pushed[i] < pushed[j] })
		fmt.Printf("deploy tracking %-5v webhook -> pushed p50 %v  p90 %v  (n=%d, server timestamps)\n", watch,
			percentile(pushed, .5).Round(time.Millisecond), percentile(pushed, .9).Round(time.Millisecond), len(pushed))
		if watch {
			sort.Slice(refreshed, func(i, j int) bool { return refreshed[i] < refreshed[j] })
			fmt.Printf("deploy tracking refresh  push -> Argo CD refresh annotation p50 %v  p90 %v  (n=%d)\n",
				percentile(refreshed, .5).Round(time.Millisecond), percentile(refreshed, .9).Round(time.Millisecond), len(refreshed))
		}
	}
}

// awaitRefresh waits for imagehook's refresh annotation on the Application and returns how long
// after the push (at, the server's clock, the same machine's) it was seen; it then removes the
// annotation, as Argo CD's controller does once it has refreshed.
func awaitRefresh(ctx context.Context, t *testing.T, apps dynamic.ResourceInterface, at time.Time) time.Duration {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		app, err := apps.Get(ctx, "website", metav1.GetOptions{})
		if err == nil && app.GetAnnotations()[deploy.ArgoRefreshAnnotation] == "normal" {
			seen := time.Now()
			patch := []byte(`{"metadata":{"annotations":{"` + deploy.ArgoRefreshAnnotation + `":null}}}`)
			if _, err := apps.Patch(ctx, "website", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			return seen.Sub(at)
		}
		if time.Now().After(deadline) {
			t.Fatal("no refresh annotation 30s after the push")
		}
	}
}

// pushedAfter reads an event's git step: the time from the webhook to the push, by the server's
// clock, and when the push was.
func pushedAfter(c *client, id string) (time.Duration, time.Time, bool) {
	resp, err := c.http.Get(c.base + "/events/" + id)
	if err != nil {
		return 0, time.Time{}, false
	}
	defer resp.Body.Close()
	var ev struct {
		ReceivedAt time.Time `json:"receivedAt"`
		Steps      []struct {
			Name, Status string
			At           time.Time
		} `json:"steps"`
	}
	if json.NewDecoder(resp.Body).Decode(&ev) != nil {
		return 0, time.Time{}, false
	}
	for _, s := range ev.Steps {
		if s.Name == "git" && s.Status == "succeeded" {
			return s.At.Sub(ev.ReceivedAt), s.At, true
		}
	}
	return 0, time.Time{}, false
}

func kubeCreateNS(ctx context.Context, dyn dynamic.Interface, name string) (*unstructured.Unstructured, error) {
	return dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx,
		&unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}, metav1.CreateOptions{})
}
