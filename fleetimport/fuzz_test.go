package fleetimport

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadFleetYAML: whatever a fleet.yaml (or a GitRepo file) holds — huge, aliased, odd types —
// the reader returns scans or a refusal naming the file, with a line inside it, and never panics.
func FuzzReadFleetYAML(f *testing.F) {
	for _, c := range []string{"two-scans/repo/apps/web", "two-scans/repo/apps/api", "suspended/repo", "no-secret/repo/apps/web"} {
		data, err := os.ReadFile(filepath.Join("testdata", c, "fleet.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"imageScans: &a [*a]\n",
		"a: &a [x, x]\nb: &b [*a, *a]\nimageScans: [*b]\n",
		"imageScans:\n- <<: {image: x}\n  tagName: y\n",
		"imageScans:\n- image: [1]\n",
		"imageScans:\n- {image: x, tagName: y, suspend: maybe}\n",
		"imageScans:\n- {image: x, tagName: y, policy: {semver: [1]}}\n",
		"imageScans: !!binary aGVsbG8=\n",
		"---\n---\nimageScans: []\n",
		"imageScans:\n- image: x\n  ImageScans: y\n  IMAGE: z\n",
		strings.Repeat("[", 5000),
	} {
		f.Add([]byte(s))
	}
	gitrepo, err := os.ReadFile(filepath.Join("testdata", "two-scans", "gitrepo.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(gitrepo)
	f.Fuzz(func(t *testing.T, data []byte) {
		scans, _, err := readFleetYAML("fleet.yaml", data)
		// Lines as YAML counts them: \n, \r\n and a lone \r each end one.
		lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
		if _, _, gerr := readGitRepo("fleet.yaml", data); gerr != nil {
			var r *Refusal
			if !errors.As(gerr, &r) || r.File != "fleet.yaml" || r.Reason == "" || r.Line < 0 || r.Line > lines+1 {
				t.Fatalf("GitRepo reader: error %v (%T) does not name the file and a line inside it", gerr, gerr)
			}
		}
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) || r.File != "fleet.yaml" || r.Reason == "" || r.Line < 0 || r.Line > lines+1 {
				t.Fatalf("error %v (%T) does not name the file and a line inside it", err, err)
			}
			if scans != nil {
				t.Fatal("scans returned beside a refusal")
			}
			return
		}
		for _, s := range scans {
			if s.Line < 1 || s.Line > lines {
				t.Fatalf("scan line %d outside the file (%d lines)", s.Line, lines)
			}
		}
	})
}

// TestHugeFleetYAMLRefused: a fleet.yaml past MaxFileBytes is refused before it is decoded.
func TestHugeFleetYAMLRefused(t *testing.T) {
	root := t.TempDir()
	big := append([]byte("imageScans: []\nx: "), bytes.Repeat([]byte("a"), MaxFileBytes)...)
	if err := os.WriteFile(filepath.Join(root, "fleet.yaml"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Import(Options{Root: root, Dirs: []string{"."}, RepoURL: "https://git.example.com/a.git"})
	var refused Refused
	if res != nil || !errors.As(err, &refused) || refused[0].Reason != ReasonNotReadable || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("res %v, err %v", res != nil, err)
	}
}
