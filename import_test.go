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
			cfg := filepath.Join(t.TempDir(), "imagehook.yaml")
			if err := os.WriteFile(cfg, out.Bytes(), 0o600); err != nil {
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
