package fleetimport_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/fleetimport"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/registrytest"
	"github.com/imagehook/imagehook/internal/testlog"
	"github.com/imagehook/imagehook/oci"
	"github.com/imagehook/imagehook/service"
)

const gitPassword = "git-pa55word-fleet-do-not-log"

// TestImportThenServe: the two-scans bundle (a semver range and an alphabetical order, markers in a
// Deployment — whole and :digest — and in a kustomization — :name and :tag —, a secretRef) is
// imported as printed; its placeholders are filled; imagehook serves it against a real
// distribution registry and a git smart-HTTP server. Reconcile's first pass rewrites exactly the
// marked scalars Fleet would have rewritten, byte for byte, in commits by imageScanCommit's author
// with its message, and nothing else in the repository changes.
func TestImportThenServe(t *testing.T) {
	reg := registrytest.Start(t, nil)
	git := gitserver.New(t, "imagehook", gitPassword)
	fixture := filepath.Join("testdata", "two-scans")

	// The fixture's checkout, with the local registry's host for registry.example.com.
	repoDir := t.TempDir()
	files := map[string]string{}
	err := filepath.WalkDir(filepath.Join(fixture, "repo"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(fixture, "repo"), p)
		files[filepath.ToSlash(rel)] = strings.ReplaceAll(string(data), "registry.example.com", reg.Host)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, content := range files {
		p := filepath.Join(repoDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	url := git.NewRepo(t, "apps", os.DirFS(repoDir))
	gitrepo, err := os.ReadFile(filepath.Join(fixture, "gitrepo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gitrepoFile := filepath.Join(t.TempDir(), "gitrepo.yaml")
	if err := os.WriteFile(gitrepoFile, []byte(strings.Replace(string(gitrepo), "https://git.example.com/platform/apps.git", url, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	// What the registry holds: 1.3.1 is the newest in >=1.0.0 <2.0.0 (2.0.0 is outside, the
	// release candidate a pre-release); 20260301-cccc the greatest api tag.
	reg.Push(t, "team/web", "1.2.0")
	want131 := reg.Push(t, "team/web", "1.3.1")
	reg.Push(t, "team/web", "2.0.0")
	reg.Push(t, "team/web", "1.4.0-rc.1")
	for _, tag := range []string{"20260101-aaaa", "20260301-cccc", "20260201-bbbb"} {
		reg.Push(t, "team/api", tag)
	}

	res, err := fleetimport.Import(fleetimport.Options{Root: repoDir, GitRepo: gitrepoFile})
	if err != nil {
		t.Fatal(err)
	}
	// --check first: one pass against the real registry, with the filled placeholders' credentials,
	// prints the rewrite and writes nothing.
	hosts, notes := fleetimport.RegistryHosts(&res.Plan, func(k string) (string, bool) { return registrytest.User, k == "FLEET_REGCRED_USERNAME" },
		func(p string) ([]byte, error) {
			if p == "/run/secrets/imagehook/regcred/password" {
				return []byte(registrytest.Password + "\n"), nil
			}
			return nil, os.ErrNotExist
		})
	if len(notes) > 0 || len(hosts) != 1 || hosts[0].Password != registrytest.Password || !hosts[0].Insecure {
		t.Fatalf("registry hosts %+v, notes %v", hosts, notes)
	}
	var checked strings.Builder
	if err := fleetimport.Check(context.Background(), &res.Plan, oci.New(hosts, nil, slog.New(slog.DiscardHandler)), &checked); err != nil {
		t.Fatalf("check: %v\n%s", err, checked.String())
	}
	for _, want := range []string{
		"hook web: " + reg.Host + "/team/web:1.3.1@" + want131 + "\n",
		"  apps/web/deployment.yaml:15: " + reg.Host + "/team/web:1.2.0 -> " + reg.Host + "/team/web:1.3.1\n",
		"  apps/api/kustomization.yaml:8: 20260101-aaaa -> 20260301-cccc\n",
	} {
		if !strings.Contains(checked.String(), want) {
			t.Errorf("--check output lacks %q:\n%s", want, checked.String())
		}
	}
	if got, _ := os.ReadFile(filepath.Join(repoDir, "apps", "web", "deployment.yaml")); string(got) != files["apps/web/deployment.yaml"] {
		t.Error("--check wrote the checkout")
	}

	// Fill the placeholders the import named, and say where to listen and keep data.
	secrets := t.TempDir()
	for file, content := range map[string]string{"git-auth/password": gitPassword, "regcred/password": registrytest.Password} {
		p := filepath.Join(secrets, filepath.FromSlash(file))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.ReplaceAll(string(res.Config), "/run/secrets/imagehook/", secrets+"/")
	text = "listen: 127.0.0.1:0\ndataDir: " + filepath.Join(t.TempDir(), "data") + "\n" + text
	cfg, err := config.Parse([]byte(text), func(k string) (string, bool) {
		v, ok := map[string]string{"FLEET_GIT_AUTH_USERNAME": "imagehook", "FLEET_REGCRED_USERNAME": registrytest.User}[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("the imported config does not load: %v\n%s", err, text)
	}

	logs := &testlog.Buffer{}
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	bare := git.Bare("apps")
	wantFiles := map[string]string{}
	for rel, content := range files {
		wantFiles[rel] = content
	}
	host := reg.Host
	wantFiles["apps/web/deployment.yaml"] = strings.NewReplacer(
		`"`+host+`/team/web:1.2.0@sha256:1111111111111111111111111111111111111111111111111111111111111111"`, `"`+host+`/team/web:1.3.1@`+want131+`"`,
		host+`/team/web:1.2.0 # {"$imagescan": "web"}`, host+`/team/web:1.3.1 # {"$imagescan": "web"}`,
	).Replace(files["apps/web/deployment.yaml"])
	wantFiles["apps/api/kustomization.yaml"] = strings.Replace(files["apps/api/kustomization.yaml"], `newTag: "20260101-aaaa"`, `newTag: "20260301-cccc"`, 1)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		web := gitserver.Git(t, bare, "show", "main:apps/web/deployment.yaml")
		api := gitserver.Git(t, bare, "show", "main:apps/api/kustomization.yaml")
		if strings.Contains(web, "1.3.1") && strings.Contains(api, "20260301-cccc") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reconcile did not rewrite the markers; log:\n%s", logs.String())
		}
	}
	for rel, want := range wantFiles {
		// git show trims nothing but the binary's trailing newline handling: compare exactly.
		got, err := gitserver.Command(bare, "show", "main:"+rel).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s:\n--- got\n%s\n--- want (what Fleet writes)\n%s", rel, got, want)
		}
	}
	commits := strings.Split(gitserver.Git(t, bare, "log", "--format=%an <%ae>|%s", "main"), "\n")
	if len(commits) < 2 || len(commits) > 3 {
		t.Errorf("commits on main: %q, want the initial one and one or two by reconcile", commits)
	}
	for _, c := range commits[:len(commits)-1] {
		if c != "Fleet Bot <fleet@example.com>|chore: update images" {
			t.Errorf("commit %q: want the imageScanCommit author and message", c)
		}
	}
	for _, secret := range []string{gitPassword, registrytest.Password} {
		if strings.Contains(logs.String(), secret) {
			t.Error("a secret is in the log")
		}
	}
}
