package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/manifesttest"
)

func TestSetImageCommand(t *testing.T) {
	dir := t.TempDir()
	doc := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: a}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: acme/web:1.0 # keep me\n"
	p := filepath.Join(dir, "d.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"set-image", "--workload", "deployment/web", "--container", "web", "docker.io/acme/web:1.1", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := p + ": deployment/web container web: acme/web:1.0 -> acme/web:1.1\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	got, _ := os.ReadFile(p)
	if string(got) != strings.Replace(doc, "acme/web:1.0", "acme/web:1.1", 1) {
		t.Errorf("file:\n%s", got)
	}
	// Already current: exit 0, nothing written.
	out.Reset()
	if code := run([]string{"set-image", "acme/web:1.1", p}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "up to date") {
		t.Errorf("up to date: %d %q", code, out.String())
	}
	for _, args := range [][]string{
		{"set-image", "--workload", "deployment/nope", "acme/web:2", dir},
		{"set-image", "--workload", "deployment/web", "--container", "nope", "acme/web:2", dir},
		{"set-image", "Acme/Web:2", dir},
		{"set-image", "acme/web:2"},
	} {
		errOut.Reset()
		if code := run(args, &out, &errOut); code == 0 || errOut.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
	if again, _ := os.ReadFile(p); !bytes.Equal(again, got) {
		t.Error("a failed set-image changed the file")
	}
}

func TestCheckConfigRedacts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	cfg := "repos: [{name: apps, url: https://git.example.com/a.git, auth: {username: u, password: s3cret-pw}}, {name: b, url: \"https://ghp_URLt0ken@git.example.com/b.git\"}]\n" +
		"admin: {token: adm1n-t0ken}\nhooks: [{id: h, token: t0ken-value, source: aliyun, targets: [{repo: apps, workload: deployment/w}]}]\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", p}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String(), "s3cret-pw") || strings.Contains(out.String(), "t0ken-value") || strings.Contains(out.String(), "ghp_URLt0ken") ||
		strings.Contains(out.String(), "adm1n-t0ken") || !strings.Contains(out.String(), "https://***@git.example.com/b.git") || !strings.Contains(out.String(), "POST /hooks/h") {
		t.Errorf("output:\n%s", out.String())
	}
	if code := run([]string{"check-config", "--config", p + ".missing"}, &out, &errOut); code == 0 {
		t.Error("missing config accepted")
	}
}

// TestSetImageEveryPlace: the offline command reaches every kind of place the service does — a Helm
// values file by key, and markers in a file named Kustomization.
func TestSetImageEveryPlace(t *testing.T) {
	dir := t.TempDir()
	values := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(values, []byte("image:\n  repository: acme/web   # the app\n  tag: \"1.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"set-image", "--values", values, "--repository-key", "image.repository", "--tag-key", "image.tag", "acme/web:1.1"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got, _ := os.ReadFile(values); string(got) != "image:\n  repository: acme/web   # the app\n  tag: \"1.1\"\n" {
		t.Errorf("values:\n%s", got)
	}
	if !strings.Contains(out.String(), "values.yaml: image.tag: 1.0 -> 1.1") {
		t.Errorf("output %q", out.String())
	}
	kdir := filepath.Join(dir, "overlay")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	kust := "images:\n- name: acme/web\n  newTag: \"1.0\" # {\"$imagehook\": \"web:tag\"}\n"
	if err := os.WriteFile(filepath.Join(kdir, "Kustomization"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"set-image", "--marker", "web", "acme/web:1.2", kdir}, &out, &errOut); code != 0 {
		t.Fatalf("marker over a directory: exit %d: %s", code, errOut.String())
	}
	if got, _ := os.ReadFile(filepath.Join(kdir, "Kustomization")); !strings.Contains(string(got), `newTag: "1.2"`) {
		t.Errorf("Kustomization:\n%s", got)
	}
}

// TestSetImageBigFiles: set-image rewrites a 2.6 MB bundle of 3,000 CRDs byte for byte but the
// image, on a directory and on the file itself; a file it does not read (a 4 MiB file whose second
// document is over the per-document budget) is listed and the run exits non-zero, also when the
// copies beside it were rewritten.
func TestSetImageBigFiles(t *testing.T) {
	bundle := manifesttest.CRDBundle(manifesttest.BundleDeploy)
	if len(bundle) < 2_600_000 {
		t.Fatalf("bundle is %d bytes, want 2.6 MB", len(bundle))
	}
	want := strings.Replace(bundle, "registry.example.com/acme/web:1.0.0", "registry.example.com/acme/web:1.1.0", 1)
	write := func(p, data string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("bundle", func(t *testing.T) {
		for _, onFile := range []bool{false, true} {
			dir := t.TempDir()
			p := filepath.Join(dir, "install.yaml")
			write(p, bundle)
			arg := dir
			if onFile {
				arg = p
			}
			var out, errOut bytes.Buffer
			code := run([]string{"set-image", "--workload", "deployment/web", "--namespace", "team", "--container", "app", "registry.example.com/acme/web:1.1.0", arg}, &out, &errOut)
			if code != 0 || errOut.Len() > 0 {
				t.Fatalf("%s: exit %d: %s", arg, code, errOut.String())
			}
			if line := p + ": deployment/web container app: registry.example.com/acme/web:1.0.0 -> registry.example.com/acme/web:1.1.0\n"; out.String() != line {
				t.Errorf("output %q, want %q", out.String(), line)
			}
			if got, _ := os.ReadFile(p); string(got) != want {
				t.Errorf("%s: the rewrite changed more than the image's bytes", arg)
			}
		}
	})
	hostile := strings.ReplaceAll(manifesttest.BundleDeploy, "namespace: team", "namespace: other") + "---\nlist: [" + strings.Repeat("1,", 2<<20) + "1]\n"
	t.Run("a file not read is listed", func(t *testing.T) {
		dir := t.TempDir()
		small, big := filepath.Join(dir, "deploy.yaml"), filepath.Join(dir, "vendor.yaml")
		write(small, manifesttest.BundleDeploy)
		write(big, hostile)
		var out, errOut bytes.Buffer
		code := run([]string{"set-image", "registry.example.com/acme/web:1.1.0", dir}, &out, &errOut)
		if code == 0 {
			t.Errorf("exit 0 with a file not read; stdout %q", out.String())
		}
		if !strings.Contains(errOut.String(), big+": 4.0 MiB; its document 2 decodes to over 150000 YAML nodes") {
			t.Errorf("stderr %q does not name %s", errOut.String(), big)
		}
		if got, _ := os.ReadFile(small); !strings.Contains(string(got), "acme/web:1.1.0") || !strings.Contains(out.String(), small) {
			t.Errorf("the copy that was read was not rewritten: %q", out.String())
		}
		if got, _ := os.ReadFile(big); string(got) != hostile {
			t.Error("the file not read changed")
		}
	})
	t.Run("the file not read itself", func(t *testing.T) {
		dir := t.TempDir()
		big := filepath.Join(dir, "vendor.yaml")
		write(big, hostile)
		var out, errOut bytes.Buffer
		code := run([]string{"set-image", "--workload", "deployment/web", "registry.example.com/acme/web:1.1.0", big}, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "not found; 1 file that could hold it was not read: vendor.yaml (4.0 MiB; its document 2") {
			t.Errorf("exit %d, stderr %q: want the file named as not read", code, errOut.String())
		}
	})
	t.Run("a template is only warned about", func(t *testing.T) {
		dir := t.TempDir()
		write(filepath.Join(dir, "deploy.yaml"), manifesttest.BundleDeploy)
		write(filepath.Join(dir, "tmpl.yaml"), "kind: Deployment\nmetadata: {name: {{ .Values.web }}\n")
		var out, errOut bytes.Buffer
		code := run([]string{"set-image", "--workload", "deployment/web", "registry.example.com/acme/web:1.1.0", dir}, &out, &errOut)
		if code != 0 || !strings.Contains(errOut.String(), "warning: not read: "+filepath.Join(dir, "tmpl.yaml")+": not valid YAML") {
			t.Errorf("exit %d, stderr %q: want 0 and a warning naming the template", code, errOut.String())
		}
	})
}

// TestHistoryShowsOneLineName (issue row 11): a workload whose name in the manifest held a line
// break is shown by history with the one-line name the commit's trailer carries, not "-".
func TestHistoryShowsOneLineName(t *testing.T) {
	dir := t.TempDir()
	gitserver.Git(t, dir, "init", "-q", "-b", "main")
	var msg strings.Builder
	msg.WriteString("imagehook: update\n\n")
	audit.WriteBlock(&msg, &event.Event{ID: "01evt", Hook: "web", Push: event.Push{Image: "acme/web:2", Source: "custom"}},
		[]event.Change{{Workload: "deployment/web\nsite", Container: "app", Old: "acme/web:1", New: "acme/web:2"}})
	gitserver.Git(t, dir, "commit", "-q", "--allow-empty", "-m", msg.String())
	var out, errOut bytes.Buffer
	if code := run([]string{"history", "--repo", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "deployment/web site") || !strings.Contains(lines[1], "acme/web:1 -> acme/web:2") {
		t.Errorf("history:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"history", "--repo", dir, "--workload", "deployment/web site"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "01evt") {
		t.Errorf("--workload with the one-line name: exit %d\n%s", code, out.String())
	}
}

// TestConfigErrorsHidePasswords (issue row 8): a provider imagehook does not speak, for a
// repository URL with a password, is refused by check-config and by serve without the password.
func TestConfigErrorsHidePasswords(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	cfg := "repos:\n  - name: apps\n    url: https://bot:Sup3r-s3cret-pw@bitbucket.org/team/apps.git\n" +
		"    writeBack: {mode: pullRequest, provider: bitbucket, token: forge-t0ken-long}\n" +
		"hooks: [{id: h, token: t0ken-value, targets: [{repo: apps, workload: deployment/w}]}]\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"check-config", "serve"} {
		var out, errOut bytes.Buffer
		code := run([]string{cmd, "--config", p}, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), `provider: "bitbucket"`) || !strings.Contains(errOut.String(), "@bitbucket.org/team/apps.git") {
			t.Errorf("%s: exit %d, stderr %q", cmd, code, errOut.String())
		}
		if strings.Contains(errOut.String()+out.String(), "Sup3r-s3cret-pw") {
			t.Errorf("%s prints the password: %s", cmd, errOut.String())
		}
	}
}

// TestShortSecretWarned (issue row 10): check-config prints a warning for a two-character token
// and masks it only as a whole word, so a hook id that holds the same letters reads as it is;
// serve logs the same warning.
func TestShortSecretWarned(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	cfg := "listen: \"256.0.0.1:1\"\ndataDir: " + filepath.Join(dir, "data") + "\nrepos: [{name: apps, url: file:///nowhere}]\n" +
		"hooks:\n  - id: TFS-web\n    token: TF\n    targets: [{repo: apps, workload: deployment/w}]\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", p}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	warning := "hooks[TFS-web].token (line 6): a secret of 2 characters"
	if !strings.Contains(out.String(), "# warning: "+warning) || !strings.Contains(out.String(), "POST /hooks/TFS-web") ||
		strings.Contains(out.String(), "token: TF") {
		t.Errorf("output:\n%s", out.String())
	}
	// serve logs the warning before it starts (here, before it fails to listen on no address).
	errOut.Reset()
	if code := run([]string{"serve", "--config", p}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "config: "+warning) {
		t.Errorf("serve: exit %d, stderr:\n%s", code, errOut.String())
	}
}
