package service

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
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
	"github.com/imagehook/imagehook/internal/kubetest"
	"github.com/imagehook/imagehook/internal/smtptest"
)

// TestPeerTextIsBounded (issue row 7): Argo CD reports a failed sync with a 1 MiB message full of
// line breaks and markup. The event stores a few KB of it, cut with a mark, and so the journal's
// row, GET /events/{id}, the event page and the failure mail are each small.
func TestPeerTextIsBounded(t *testing.T) {
	env, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(env.Admin)
	dyn := dynamic.NewForConfigOrDie(env.Admin)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, crd("argoproj.io", "Application", "applications", false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"web", "argocd"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "website"}}
	if _, err := kube.AppsV1().Deployments("web").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "website", Namespace: "web"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel.MatchLabels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "website", Image: "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0"}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := kubetest.WriteKubeconfig(t.TempDir(), env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)
	h := newHarness(t, fmt.Sprintf("clusters: [{name: prod, kubeconfig: %s}]", kubeconfig),
		fmt.Sprintf(`mail: {host: 127.0.0.1, port: %d, tls: none, username: %s, password: %s, from: %s, to: [ops@example.com], language: en}`,
			smtpSrv.Port, smtptest.User, smtptest.Password, smtptest.User))
	h.stop()
	h.cfg.Repos[0].Watch = &config.Watch{Cluster: "prod", ArgoCD: config.Namespace{Namespace: "argocd"}, Timeout: config.Duration(time.Minute)}
	h.start()

	apps := dyn.Resource(deploy.Applications).Namespace("argocd")
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": map[string]any{"name": "website", "namespace": "argocd"},
		"spec": map[string]any{"source": map[string]any{"repoURL": h.cfg.Repos[0].URL, "path": "apps/website", "targetRevision": "main"}},
	}}
	if _, err := apps.Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, ev := h.post("/hooks/dockerhub?token="+hookToken, []byte(`{"push_data":{"tag":"6.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if code != http.StatusAccepted {
		t.Fatalf("push: %d %v", code, ev)
	}
	id := fmt.Sprint(ev["id"])
	var commit string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(h.gitOut("show", "main:apps/website/deployment.yaml"), "website:6.0.0") {
			commit = h.gitOut("rev-parse", "main")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not committed:\n%s", h.logs.String())
		}
	}
	// Argo CD's message for a sync of many objects: 1 MiB of lines with markup in them.
	line := `Deployment.apps "website" is invalid: <b>spec.template.spec.containers[0].image</b>: Invalid value` + "\n"
	message := strings.Repeat(line, (1<<20)/len(line)+1)[:1<<20]
	// imagehook's refresh annotation may land between the read and the write: read again then.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := apps.Get(ctx, "website", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Object["status"] = map[string]any{
			"sync":           map[string]any{"status": "OutOfSync", "revision": commit},
			"health":         map[string]any{"status": "Healthy"},
			"operationState": map[string]any{"phase": "Failed", "message": message, "syncResult": map[string]any{"revision": commit}},
		}
		_, err = apps.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ev = h.waitDone(id)
	st := step(ev, "deploy")
	if ev["status"] != "failed" || !strings.Contains(fmt.Sprint(st["error"]), "sync failed: Deployment.apps") ||
		!strings.Contains(fmt.Sprint(st["error"]), " bytes)") {
		t.Fatalf("deploy step = %.300v", st)
	}
	const small = 64 << 10
	size := func(what, url string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || len(body) > small {
			t.Errorf("%s: %d, %d bytes", what, resp.StatusCode, len(body))
		}
	}
	size("GET /events/{id}", "http://"+h.addr+"/events/"+id)
	size("event page", "http://"+h.addr+"/ui/events/"+id)
	var mail []byte
	for deadline := time.Now().Add(30 * time.Second); mail == nil; time.Sleep(20 * time.Millisecond) {
		if msgs, _ := smtpSrv.Messages(); len(msgs) > 0 {
			mail = msgs[len(msgs)-1]
		}
		if time.Now().After(deadline) {
			t.Fatal("no failure mail")
		}
	}
	if len(mail) > small {
		t.Errorf("mail: %d bytes", len(mail))
	}

	h.stop()
	db, err := sql.Open("sqlite", filepath.Join(h.cfg.DataDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var row int
	if err := db.QueryRow(`SELECT length(data) FROM events WHERE id = ?`, id).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if row > small {
		t.Errorf("journal row: %d bytes", row)
	}
}
