// Package charts tests the Helm chart: helm lint and helm template, the rendered config parsed by
// imagehook's own config package, and every rendered object applied to a real kube-apiserver with
// server-side dry-run.
package charts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/internal/kubetest"
)

func helm(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("IMAGEHOOK_HELM_BIN"); b != "" {
		return b
	}
	if cache, err := os.UserCacheDir(); err == nil {
		b := filepath.Join(cache, "imagehook", "helm", "v3.22.0", "helm")
		if _, err := os.Stat(b); err == nil {
			return b
		}
	}
	t.Skip("helm not built: run hack/helm/build.sh (or set IMAGEHOOK_HELM_BIN)")
	return ""
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// docs splits rendered YAML into objects.
func docs(t *testing.T, rendered string) []*unstructured.Unstructured {
	t.Helper()
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(rendered), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// containerEnv is the imagehook container's environment, name to value ("(from Secret)" for a
// secretKeyRef).
func containerEnv(deploy *unstructured.Unstructured) map[string]string {
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	env := map[string]string{}
	for _, c := range containers {
		list, _, _ := unstructured.NestedSlice(c.(map[string]any), "env")
		for _, e := range list {
			m := e.(map[string]any)
			v := fmt.Sprint(m["value"])
			if _, ok := m["valueFrom"]; ok {
				v = "(from Secret)"
			}
			env[fmt.Sprint(m["name"])] = v
		}
	}
	return env
}

func TestChart(t *testing.T) {
	bin := helm(t)
	if out, err := run(t, bin, "lint", "imagehook", "-f", "testdata/values.yaml", "--strict"); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	rendered, err := run(t, bin, "template", "imagehook", "imagehook", "-n", "imagehook", "-f", "testdata/values.yaml")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	objs := docs(t, rendered)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	if kinds["Deployment"] != 1 || kinds["PodDisruptionBudget"] != 1 || kinds["Role"] != 4 || kinds["RoleBinding"] != 4 || kinds["ServiceAccount"] != 1 || kinds["Service"] != 1 {
		t.Errorf("rendered kinds %v", kinds)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "ConfigMap":
			// The rendered config is one imagehook accepts, with the DSN and tokens from the env.
			text, _, _ := unstructured.NestedString(o.Object, "data", "imagehook.yaml")
			env := map[string]string{"IMAGEHOOK_DATABASE_URL": "postgres://u:p@db/imagehook", "GIT_TOKEN": "g", "WEBSITE_TOKEN": "w"}
			// The old tool's ConfigMap is mounted at /etc/webhook/source in the pod; here, a directory.
			text = strings.ReplaceAll(text, "/etc/webhook/source", t.TempDir())
			cfg, err := config.Parse([]byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatalf("rendered config refused: %v\n%s", err, text)
			}
			if cfg.Journal.Driver != "postgres" || cfg.HooksDir == "" || cfg.Journal.DSN != env["IMAGEHOOK_DATABASE_URL"] {
				t.Errorf("rendered config: journal %+v hooksDir %q", cfg.Journal, cfg.HooksDir)
			}
		case "Deployment":
			spec, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
			c := spec["containers"].([]any)[0].(map[string]any)
			sc := c["securityContext"].(map[string]any)
			if sc["readOnlyRootFilesystem"] != true || spec["securityContext"].(map[string]any)["runAsNonRoot"] != true {
				t.Errorf("pod security: %v %v", sc, spec["securityContext"])
			}
			if r, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas"); fmt.Sprint(r) != "3" {
				t.Errorf("replicas %v", r)
			}
			// No fixed GOMEMLIMIT: serve takes 90 % of whatever memory limit the pod is given.
			if v, ok := containerEnv(o)["GOMEMLIMIT"]; ok {
				t.Errorf("GOMEMLIMIT rendered as %q without goMemLimit; want it unset", v)
			}
		}
	}
	// goMemLimit, when given, is the container's GOMEMLIMIT.
	withLimit, err := run(t, bin, "template", "imagehook", "imagehook", "-n", "imagehook", "-f", "testdata/values.yaml", "--set", "goMemLimit=300MiB")
	if err != nil {
		t.Fatalf("helm template --set goMemLimit: %v\n%s", err, withLimit)
	}
	for _, o := range docs(t, withLimit) {
		if o.GetKind() != "Deployment" {
			continue
		}
		if got := containerEnv(o); got["GOMEMLIMIT"] != "300MiB" || got["IMAGEHOOK_DATABASE_URL"] != "(from Secret)" {
			t.Errorf("env with goMemLimit 300MiB: got %v, want GOMEMLIMIT=300MiB beside the DSN", got)
		}
	}
	// One replica on SQLite with no Secrets has no environment at all (no empty env: either).
	single, err := run(t, bin, "template", "imagehook", "imagehook", "--set", "journal.driver=sqlite", "--set", "replicaCount=1")
	if err != nil {
		t.Fatalf("helm template sqlite: %v\n%s", err, single)
	}
	for _, o := range docs(t, single) {
		if o.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if _, has := containers[0].(map[string]any)["env"]; has {
			t.Errorf("sqlite, one replica: env %v, want no env key", containerEnv(o))
		}
	}
	// One process's SQLite file cannot be shared: the chart refuses replicas on it.
	if out, err := run(t, bin, "template", "imagehook", "imagehook", "--set", "journal.driver=sqlite"); err == nil || !strings.Contains(out, "use replicaCount 1") {
		t.Errorf("sqlite with replicas: %v\n%s", err, out)
	}

	// Every object, as the API server would take it.
	env, err := kubetest.Start()
	if err != nil {
		t.Skipf("kube-apiserver: %v", err)
	}
	defer env.Stop()
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(env.Admin)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(env.Admin)))
	for _, ns := range []string{"imagehook", "web", "argocd", "fleet-default"} {
		nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		ns := o.GetNamespace()
		if ns == "" {
			ns = "imagehook"
		}
		data, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		_, err = dyn.Resource(m.Resource).Namespace(ns).Patch(ctx, o.GetName(), types.ApplyPatchType, bytes.Clone(data),
			metav1.PatchOptions{FieldManager: "imagehook-chart-test", DryRun: []string{metav1.DryRunAll}, Force: &force})
		if err != nil {
			t.Errorf("server-side dry-run of %s %s/%s: %v", gvk.Kind, ns, o.GetName(), err)
		}
	}
}
