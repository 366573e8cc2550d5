package service

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/imagehook/imagehook/internal/kubetest"
)

// TestDirectApply runs the old tool's mode (a hook with only a cluster target) and the combined
// mode (commit, then apply) against a real kube-apiserver.
func TestDirectApply(t *testing.T) {
	env, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	kube := kubernetes.NewForConfigOrDie(env.Admin)
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "website"}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "website", Namespace: "web"}, Spec: appsv1.DeploymentSpec{Selector: sel,
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel.MatchLabels}, Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "website", Image: "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0"}, {Name: "log-shipper", Image: "fluent/fluent-bit:3.1"}}}}}}
	if _, err := kube.AppsV1().Deployments("web").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := kubetest.WriteKubeconfig(t.TempDir(), env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	hooks := `  - id: direct
    token: ${HOOK_TOKEN}
    source: aliyun
    targets: [{cluster: prod, workload: deployment/website, namespace: web, container: website}]
  - id: both
    token: ${HOOK_TOKEN}
    source: aliyun
    targets: [{repo: apps, path: apps/website, cluster: prod, workload: deployment/website, namespace: web, container: website}]
  - id: broken-repo-path
    token: ${HOOK_TOKEN}
    source: aliyun
    targets: [{repo: apps, path: apps/nowhere, cluster: prod, workload: deployment/website, namespace: web, container: website}]
`
	// The old tool's ConfigMap, mounted as a directory of hooks.json files.
	hooksDir := t.TempDir()
	oldHooks, err := os.ReadFile("../config/testdata/hooks/website.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hooksDir, "website.json"), oldHooks, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarnessHooks(t, hooks, fmt.Sprintf("clusters: [{name: prod, kubeconfig: %s}]\nhooksDir: %s", kubeconfig, hooksDir))
	push := func(tag string) []byte {
		return []byte(`{"push_data":{"tag":"` + tag + `"},"repository":{"region":"cn-hangzhou","repo_full_name":"imagehook-demo/website"}}`)
	}
	image := func() string {
		d, err := kube.AppsV1().Deployments("web").Get(ctx, "website", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Spec.Template.Spec.Containers[1].Image != "fluent/fluent-bit:3.1" {
			t.Errorf("sidecar changed: %s", d.Spec.Template.Spec.Containers[1].Image)
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	stepStatus := func(body map[string]any, name string) string {
		for _, s := range body["steps"].([]any) {
			if m := s.(map[string]any); m["name"] == name {
				return fmt.Sprint(m["status"])
			}
		}
		return "none"
	}

	before := h.gitOut("rev-parse", "main")
	code, body := h.post("/hooks/direct?wait=30s&token="+hookToken+"&ns=web&workload=deployment/website&container=website", push("2.0.0"))
	if code != http.StatusOK || body["status"] != "succeeded" || stepStatus(body, "apply") != "succeeded" || stepStatus(body, "git") != "none" {
		t.Fatalf("direct: %d %v", code, body)
	}
	if got := image(); got != "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:2.0.0" {
		t.Errorf("direct: image = %s", got)
	}
	if h.gitOut("rev-parse", "main") != before {
		t.Error("a direct-only hook committed")
	}

	code, body = h.post("/hooks/both?wait=30s&token="+hookToken, push("2.1.0"))
	if code != http.StatusOK || body["status"] != "succeeded" || stepStatus(body, "git") != "succeeded" || stepStatus(body, "apply") != "succeeded" {
		t.Fatalf("both: %d %v", code, body)
	}
	if got := image(); !strings.HasSuffix(got, ":2.1.0") || !strings.Contains(h.gitOut("show", "main:apps/website/deployment.yaml"), "website:2.1.0") {
		t.Errorf("both: cluster %s, or git not updated", got)
	}

	// The old tool's hook, its URL unchanged.
	oldURL := "/hooks/cnrancher_website?token=website-hook-token&ns=web&workload=deployment/website&container=website&repo_type=aliyun&wait=30s"
	code, body = h.post(oldURL, push("3.0.0"))
	if code != http.StatusOK || body["status"] != "succeeded" || stepStatus(body, "apply") != "succeeded" {
		t.Fatalf("hooks.json: %d %v", code, body)
	}
	if got := image(); !strings.HasSuffix(got, ":3.0.0") {
		t.Errorf("hooks.json: image = %s", got)
	}
	if code, _ := h.post(strings.Replace(oldURL, "ns=web", "ns=other", 1), push("3.0.1")); code != http.StatusForbidden {
		t.Errorf("hooks.json with another namespace: %d, want 403", code)
	}
	// A broken file keeps what is served; a new file adds its hook.
	if err := os.WriteFile(filepath.Join(hooksDir, "broken.json"), []byte("[{"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if code, _ := h.post(oldURL, push("3.0.2")); code != http.StatusOK {
		t.Errorf("after a broken file: %d", code)
	}
	if !strings.Contains(h.logs.String(), "does not load") {
		t.Error("the broken file was not logged")
	}
	os.Remove(filepath.Join(hooksDir, "broken.json"))
	if err := os.WriteFile(filepath.Join(hooksDir, "second.json"), bytes.ReplaceAll(oldHooks, []byte("cnrancher_website"), []byte("second")), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := h.post(strings.Replace(oldURL, "cnrancher_website", "second", 1), push("3.0.3"))
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new hooks.json hook is not served: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A failed commit does not stop the apply; the event fails and says why.
	code, body = h.post("/hooks/broken-repo-path?wait=30s&token="+hookToken, push("4.0.0"))
	if code != http.StatusOK || body["status"] != "failed" || stepStatus(body, "git") != "failed" || stepStatus(body, "apply") != "succeeded" {
		t.Fatalf("broken: %d %v", code, body)
	}
	if got := image(); !strings.HasSuffix(got, ":4.0.0") {
		t.Errorf("broken: image = %s", got)
	}
}
