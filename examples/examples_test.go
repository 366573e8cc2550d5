package examples

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/config"
)

func docs(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
}

// TestManifestsExample checks that the quickstart's sample repository has the target it names.
func TestManifestsExample(t *testing.T) {
	fsys := Manifests()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		docs(t, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesExample builds the kustomization (with kubectl where present), checks least
// privilege, and loads the embedded imagehook config.
func TestKubernetesExample(t *testing.T) {
	var all []byte
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
		all = out
	} else {
		files, _ := filepath.Glob("kubernetes/*.yaml")
		for _, f := range files {
			data, _ := os.ReadFile(f)
			all = append(append(all, data...), "\n---\n"...)
		}
	}
	var cfgText string
	kinds := map[string]bool{}
	for _, d := range docs(t, all) {
		kind, _ := d["kind"].(string)
		kinds[kind] = true
		meta, _ := d["metadata"].(map[string]any)
		switch kind {
		case "ClusterRole", "ClusterRoleBinding":
			t.Errorf("%s: imagehook needs no cluster-wide rights", kind)
		case "Role":
			if meta["namespace"] != "web" {
				t.Errorf("Role is in namespace %v, want the managed namespace web", meta["namespace"])
			}
			for _, r := range d["rules"].([]any) {
				for _, v := range r.(map[string]any)["verbs"].([]any) {
					if v == "*" || v == "update" || v == "delete" || v == "create" {
						t.Errorf("Role grants %v", v)
					}
				}
			}
		case "ConfigMap":
			cfgText = d["data"].(map[string]any)["imagehook.yaml"].(string)
		}
	}
	for _, k := range []string{"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap"} {
		if !kinds[k] {
			t.Errorf("no %s in the example", k)
		}
	}
	// The secrets it names are files: give it some, and the config must load.
	dir := t.TempDir()
	for _, name := range []string{"git-token", "smtp-password", "website-token"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgText = strings.ReplaceAll(cfgText, "/run/secrets/imagehook", dir)
	if _, err := config.Parse([]byte(cfgText), func(string) (string, bool) { return "", false }); err != nil {
		t.Errorf("example config: %v", err)
	}
}

// TestOtherExamples parses every example and loads the migration hooks.json as imagehook would.
func TestOtherExamples(t *testing.T) {
	for _, f := range []string{"argocd/application.yaml", "fleet/gitrepo.yaml", "migrate-from-webhook/deployment.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if d := docs(t, data); len(d) != 1 || d[0]["kind"] == nil {
			t.Errorf("%s: %v", f, d)
		}
	}
	hooks, err := config.LoadHooksDir("migrate-from-webhook", config.InClusterName, false)
	if err != nil || len(hooks) != 1 || hooks[0].Targets[0].Workload != "deployment/website" {
		t.Errorf("migration hooks.json: %+v %v", hooks, err)
	}
	data, err := os.ReadFile("jenkins/Jenkinsfile")
	if err != nil || !bytes.Contains(data, []byte("repo_type=custom&wait=")) {
		t.Errorf("Jenkinsfile: %v", err)
	}
}

// TestSampleConfig loads the sample configuration with its variables set.
func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile("imagehook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, func(string) (string, bool) { return "x", true })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hooks) != 3 || cfg.Mail.Port != 465 || cfg.Mail.TLS != "implicit" || cfg.Hooks[1].Targets[1].Values == nil {
		t.Errorf("sample config: %+v", cfg)
	}
}
