package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportedConfigChecks: the config import fleet-imagescan prints for a bundle without a
// secretRef is accepted by check-config as printed, which names its hook as poll-only; with a
// secretRef, check-config names the placeholder still to fill.
func TestImportedConfigChecks(t *testing.T) {
	for _, tt := range []struct {
		name, fixture string
		ok            bool
		want          string
	}{
		{"no secretRef", "no-secret", true, "# hooks[web]: poll-only, asks the registry every 15m0s: 1 target(s); serves no webhook URL"},
		{"secretRef placeholder", "two-scans", false, "FLEET_GIT_AUTH_USERNAME"},
		{"secretRef placeholders filled", "two-scans", true, "# hooks[api]: poll-only, asks the registry every 10m0s: 1 target(s)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fixture := filepath.Join("fleetimport", "testdata", tt.fixture)
			var out, errOut bytes.Buffer
			if code := run([]string{"import", "fleet-imagescan", "--root", filepath.Join(fixture, "repo"), "--gitrepo", filepath.Join(fixture, "gitrepo.yaml")}, &out, &errOut); code != 0 {
				t.Fatalf("import: exit %d: %s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), "imagehook: note: ") {
				t.Errorf("no notes on stderr: %q", errOut.String())
			}
			printed := out.String()
			if strings.HasSuffix(tt.name, "filled") {
				// What a person does with the placeholders the import named: the variables set,
				// the Secrets' passwords in the files.
				secrets := t.TempDir()
				for _, f := range []string{"git-auth/password", "regcred/password"} {
					p := filepath.Join(secrets, filepath.FromSlash(f))
					if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte("a-long-enough-password\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				printed = strings.ReplaceAll(printed, "/run/secrets/imagehook/", secrets+"/")
				t.Setenv("FLEET_GIT_AUTH_USERNAME", "bot")
				t.Setenv("FLEET_REGCRED_USERNAME", "puller")
			}
			cfg := filepath.Join(t.TempDir(), "imagehook.yaml")
			if err := os.WriteFile(cfg, []byte(printed), 0o600); err != nil {
				t.Fatal(err)
			}
			var checked, checkErr bytes.Buffer
			code := run([]string{"check-config", "--config", cfg}, &checked, &checkErr)
			if (code == 0) != tt.ok {
				t.Fatalf("check-config exit %d, want ok=%v:\n%s%s", code, tt.ok, checked.String(), checkErr.String())
			}
			if got := checked.String() + checkErr.String(); !strings.Contains(got, tt.want) {
				t.Errorf("check-config said:\n%s\nwant %q in it", got, tt.want)
			}
		})
	}
}

// TestImportRefusesWithLine: a policy that cannot be translated exactly fails the command, names
// the file and line, and prints no config.
func TestImportRefusesWithLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte("imageScans:\n- image: registry.example.com/web\n  tagName: web\n  policy:\n    alphabetical: {order: backwards}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"import", "fleet-imagescan", "--root", dir, "--repo-url", "https://git.example.com/a.git", dir}, &out, &errOut); code == 0 {
		t.Fatal("an inexact policy was imported")
	}
	if out.Len() != 0 || !strings.Contains(errOut.String(), "fleet.yaml:5: alphabetical order \"backwards\"") {
		t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
	}
}

// TestImportCheckOffline: --check with a --tags list prints the rewrite of every marker one
// reconcile pass would make — the newest 1.x without pre-releases, the greatest api tag, the digest
// the list gives — and writes nothing.
func TestImportCheckOffline(t *testing.T) {
	fixture := filepath.Join("fleetimport", "testdata", "two-scans")
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	tags := filepath.Join(t.TempDir(), "tags")
	list := "# repository:tag[@digest]\nregistry.example.com/team/web:1.2.0\nregistry.example.com/team/web:1.3.1@" + d("b") +
		"\nregistry.example.com/team/web:2.0.0\nregistry.example.com/team/web:1.4.0-rc.1\n" +
		"registry.example.com/team/api:20260301-cccc@" + d("c") + "\nregistry.example.com/team/api:20260201-bbbb\n"
	if err := os.WriteFile(tags, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(fixture, "repo", "apps", "web", "deployment.yaml"))
	var out, errOut bytes.Buffer
	if code := run([]string{"import", "fleet-imagescan", "--root", filepath.Join(fixture, "repo"), "--gitrepo", filepath.Join(fixture, "gitrepo.yaml"), "--check", "--tags", tags}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"hook api: registry.example.com/team/api:20260301-cccc@" + d("c"),
		"  apps/api/kustomization.yaml:8: 20260101-aaaa -> 20260301-cccc\n",
		"  apps/api/kustomization.yaml:7: registry.example.com/team/api (up to date)\n",
		"  apps/web/deployment.yaml:11: registry.example.com/team/web:1.2.0@" + d("1") + " -> registry.example.com/team/web:1.3.1@" + d("b") + "\n",
		"  apps/web/deployment.yaml:15: registry.example.com/team/web:1.2.0 -> registry.example.com/team/web:1.3.1\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if after, _ := os.ReadFile(filepath.Join(fixture, "repo", "apps", "web", "deployment.yaml")); !bytes.Equal(before, after) {
		t.Error("--check wrote a file")
	}
}
