package fleetimport

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/<dir>/<name>, or rewrites the file under -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test -run %s -update rewrites it):\n--- got\n%s\n--- want\n%s", file, t.Name(), got, want)
	}
}

func notesText(notes []Note) []byte {
	var b strings.Builder
	for _, n := range notes {
		b.WriteString(n.String() + "\n")
	}
	return []byte(b.String())
}

// TestGolden imports each case under testdata (a repo/ checkout, an optional gitrepo.yaml) and
// compares the printed configuration and the notes with expected.yaml and expected.notes.
func TestGolden(t *testing.T) {
	for _, c := range []string{"two-scans", "no-secret", "suspended"} {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join("testdata", c)
			opts := Options{Root: filepath.Join(dir, "repo")}
			if _, err := os.Stat(filepath.Join(dir, "gitrepo.yaml")); err == nil {
				opts.GitRepo = filepath.Join(dir, "gitrepo.yaml")
			} else {
				opts.Dirs, opts.RepoURL = []string{"."}, "https://git.example.com/apps.git"
			}
			res, err := Import(opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "expected.yaml"), res.Config)
			golden(t, filepath.Join(dir, "expected.notes"), notesText(res.Notes))
		})
	}
}

// TestRefusals: what Fleet does and imagehook cannot do exactly is refused with the file and line
// and a typed reason, and no configuration is returned.
func TestRefusals(t *testing.T) {
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: %s # {\"%s\": \"%s\"}\n"
	scan := func(extra string) string {
		return "imageScans:\n- image: registry.example.com/team/web\n  tagName: web\n  interval: 5m\n" + extra
	}
	for _, tt := range []struct {
		name   string
		files  map[string]string
		reason Reason
		at     string
		want   string
	}{
		{"bad semver range", map[string]string{"fleet.yaml": scan("  policy:\n    semver:\n      range: \">= 1.0 <<\"\n")}, ReasonInvalid, "fleet.yaml:7", "semver range"},
		{"empty semver range", map[string]string{"fleet.yaml": scan("  policy:\n    semver: {range: \"\"}\n")}, ReasonInvalid, "fleet.yaml:6", "improper constraint"},
		{"unknown alphabetical order", map[string]string{"fleet.yaml": scan("  policy:\n    alphabetical:\n      order: descending\n")}, ReasonNotExact, "fleet.yaml:7", "anything but desc as asc"},
		{"interval below a second", map[string]string{"fleet.yaml": "imageScans:\n- image: registry.example.com/team/web\n  tagName: web\n  interval: 500ms\n"}, ReasonNotExact, "fleet.yaml:4", "imagehook polls every"},
		{"interval not a duration", map[string]string{"fleet.yaml": "imageScans:\n- image: registry.example.com/team/web\n  tagName: web\n  interval: 1d\n"}, ReasonInvalid, "fleet.yaml:4", "unknown unit"},
		{"interval a number", map[string]string{"fleet.yaml": "imageScans:\n- image: registry.example.com/team/web\n  tagName: web\n  interval: 300\n"}, ReasonBadType, "fleet.yaml:4", "quote it"},
		{"no tagName", map[string]string{"fleet.yaml": "imageScans:\n- image: registry.example.com/team/web\n"}, ReasonInvalid, "fleet.yaml:2", "tagName is required"},
		{"tagName a boolean in YAML 1.1", map[string]string{"fleet.yaml": "imageScans:\n- image: registry.example.com/team/web\n  tagName: yes\n"}, ReasonBadType, "fleet.yaml:3", "not text"},
		{"tagName twice across bundles", map[string]string{"a/fleet.yaml": scan(""), "b/fleet.yaml": scan("")}, ReasonAmbiguous, "b/fleet.yaml:3", "also a/fleet.yaml:3"},
		{"a key given twice by case", map[string]string{"fleet.yaml": "imageScans:\n- image: registry.example.com/team/web\n  tagName: web\n  tagname: web2\n"}, ReasonAmbiguous, "fleet.yaml:4", "given twice"},
		{"aliases", map[string]string{"fleet.yaml": "x: &img registry.example.com/team/web\nimageScans:\n- image: *img\n  tagName: web\n"}, ReasonBadType, "fleet.yaml:3", "alias"},
		{"imageScans not a list", map[string]string{"fleet.yaml": "imageScans: {image: x}\n"}, ReasonBadType, "fleet.yaml:1", "must be a list"},
		{"not YAML", map[string]string{"fleet.yaml": "imageScans: [\n"}, ReasonNotReadable, "fleet.yaml:1", "not YAML"},
		{"marker spelled otherwise", map[string]string{"fleet.yaml": scan(""), "d.yaml": fmt.Sprintf(deploy, "team/web:1.0.0", "$imagescan", "web")},
			ReasonNotExact, "d.yaml:9", "Fleet writes registry.example.com/team/web here"},
		{"docker hub short name", map[string]string{"fleet.yaml": "imageScans:\n- image: nginx\n  tagName: web\n  interval: 5m\n", "d.yaml": fmt.Sprintf(deploy, "nginx:1.25.0", "$imagescan", "web")},
			ReasonNotExact, "d.yaml:9", "Fleet writes index.docker.io/library/nginx here"},
		{"bare digest at a digest marker", map[string]string{"fleet.yaml": scan(""), "d.yaml": fmt.Sprintf(deploy, "sha256:"+strings.Repeat("a", 64), "$imagescan", "web:digest")},
			ReasonNotExact, "d.yaml:9", "bare digest"},
		{"an imagehook marker with the scan's name", map[string]string{"fleet.yaml": scan(""), "d.yaml": fmt.Sprintf(deploy, "registry.example.com/team/web:1.0.0", "$imagehook", "web")},
			ReasonNotExact, "d.yaml:9", "Fleet leaves it alone"},
		{"two secrets for one host", map[string]string{"a/fleet.yaml": scan("  secretRef: {name: one}\n"), "b/fleet.yaml": "imageScans:\n- image: registry.example.com/team/api\n  tagName: api\n  secretRef:\n    name: two\n"},
			ReasonNotExact, "b/fleet.yaml:5", "one credential"},
		{"a ${VAR} in a range", map[string]string{"fleet.yaml": scan("  policy:\n    semver:\n      range: \">=${MIN}\"\n")}, ReasonNotExact, "fleet.yaml:7", "environment variable"},
		{"a marker in a hidden directory", map[string]string{"fleet.yaml": scan(""), ".config/d.yaml": fmt.Sprintf(deploy, "registry.example.com/team/web:1.0.0", "$imagescan", "web")},
			ReasonNotExact, ".config/d.yaml", "hidden directory"},
		{"a marker in a file named Kustomization", map[string]string{"fleet.yaml": scan(""), "Kustomization": "images:\n- name: web\n  newTag: 1.0.0 # {\"$imagescan\": \"web:tag\"}\n"},
			ReasonNotExact, "Kustomization:3", "only .yaml and .yml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, err := Import(Options{Root: root, Dirs: []string{"."}, RepoURL: "https://git.example.com/apps.git"})
			if res != nil {
				t.Errorf("a configuration was returned:\n%s", res.Config)
			}
			var refused Refused
			if !errors.As(err, &refused) {
				t.Fatalf("err = %v, want Refused", err)
			}
			found := false
			for _, r := range refused {
				at := r.File
				if r.Line > 0 {
					at += ":" + strconv.Itoa(r.Line)
				}
				found = found || r.Reason == tt.reason && at == tt.at && strings.Contains(r.Detail, tt.want)
			}
			if !found {
				t.Errorf("got %v\nwant %s at %s saying %q", err, tt.reason, tt.at, tt.want)
			}
		})
	}
}

// TestSymlinkedMarkerFileRefused: Fleet reads a marked file through a symbolic link, imagehook
// never follows one: the import refuses, naming the link.
func TestSymlinkedMarkerFileRefused(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	fleet := "imageScans:\n- image: registry.example.com/team/web\n  tagName: web\n  interval: 5m\n"
	marked := "image: registry.example.com/team/web:1.0.0 # {\"$imagescan\": \"web\"}\n"
	if err := os.WriteFile(filepath.Join(root, "fleet.yaml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(elsewhere, "values.yaml"), []byte(marked), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "values.yaml"), filepath.Join(root, "values.yaml")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	_, err := Import(Options{Root: root, Dirs: []string{"."}, RepoURL: "https://git.example.com/a.git"})
	var refused Refused
	if !errors.As(err, &refused) || refused[0].File != "values.yaml" || !strings.Contains(refused[0].Detail, "symbolic link") {
		t.Fatalf("err = %v", err)
	}
}
