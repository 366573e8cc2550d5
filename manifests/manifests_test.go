package manifests

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imagehook/imagehook/imageref"
)

const (
	digest1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digest2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func mustRef(t testing.TB, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestGolden runs each case of testdata/<case>/original into a temporary copy and compares every
// file, changed or not, with testdata/<case>/expected.
func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		dir    string
		target Target
		image  string
		pin    Pin
		want   int // changed values
	}{
		{"deployment-plain", "website", Target{"Deployment", "website", "web", "website"}, "registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0", PinAuto, 1},
		{"docker-hub-shorthand-double-quoted", ".", Target{"deployment", "api", "web", "api"}, "docker.io/acme/api:1.1", PinAuto, 1},
		{"single-quoted-statefulset", ".", Target{"StatefulSet", "db", "data", "db"}, "postgres:16.2", PinAuto, 1},
		{"crlf-bom-daemonset", ".", Target{"DaemonSet", "agent", "kube-system", "agent"}, "quay.io/acme/agent:v2.1.0", PinAuto, 1},
		{"multidoc-flow-mapping", ".", Target{"Deployment", "website", "web", "website"}, "index.docker.io/acme/website:1.1.0", PinAuto, 1},
		{"cronjob-init-container", ".", Target{"CronJob", "report", "web", "migrate"}, "acme/report:2.0", PinAuto, 1},
		{"kustomize-namespace", ".", Target{"Deployment", "website", "web", "website"}, "acme/website:1.1.0", PinAuto, 1},
		{"helm-template-skipped", ".", Target{"Deployment", "website", "web", "website"}, "registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0", PinAuto, 1},
		{"digest-pinned-stays-pinned", ".", Target{"Deployment", "website", "web", "website"}, "acme/website:1.1.0@" + digest2, PinAuto, 1},
		{"repushed-tag-gets-digest", ".", Target{"Deployment", "website", "web", "website"}, "acme/website:latest@" + digest2, PinAuto, 1},
		{"all-references", ".", Target{}, "acme/website:1.1.0", PinAuto, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			if err := os.CopyFS(work, os.DirFS(filepath.Join("testdata", tt.name, "original"))); err != nil {
				t.Fatal(err)
			}
			res, err := SetImage(os.DirFS(work), tt.dir, tt.target, mustRef(t, tt.image), Options{Pin: tt.pin})
			if err != nil {
				t.Fatalf("SetImage: %v", err)
			}
			if err := WriteFiles(work, res); err != nil {
				t.Fatal(err)
			}
			changed := 0
			for _, c := range res.Changes {
				if c.Changed() {
					changed++
				}
			}
			if changed != tt.want {
				t.Errorf("changed %d values, want %d: %v", changed, tt.want, res.Changes)
			}
			diffDirs(t, filepath.Join("testdata", tt.name, "expected"), work)
		})
	}
}

// diffDirs fails the test unless both trees hold the same files with the same bytes.
func diffDirs(t *testing.T, want, got string) {
	t.Helper()
	files := map[string]bool{}
	for _, root := range []string{want, got} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(root, p)
				files[rel] = true
			}
			return nil
		})
	}
	for rel := range files {
		w, werr := os.ReadFile(filepath.Join(want, rel))
		g, gerr := os.ReadFile(filepath.Join(got, rel))
		if werr != nil || gerr != nil {
			t.Errorf("%s: present in only one tree (%v, %v)", rel, werr, gerr)
			continue
		}
		if !bytes.Equal(w, g) {
			t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", rel, g, w)
		}
	}
}

func TestSetImageErrors(t *testing.T) {
	dup := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: web, image: acme/web:1}]}}}\n"
	block := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: a}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: |\n          acme/web:1\n"
	pinned := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: a}\nspec: {template: {spec: {containers: [{name: web, image: 'acme/web:1@" + digest1 + "'}]}}}\n"
	tests := []struct {
		name   string
		files  map[string]string
		target Target
		image  string
		want   error
		msg    string
	}{
		{"workload missing", map[string]string{"a.yaml": dup}, Target{"Deployment", "api", "", "api"}, "acme/api:2", ErrNotFound, "deployment/api"},
		{"container missing", map[string]string{"a.yaml": dup}, Target{"Deployment", "web", "", "sidecar"}, "acme/web:2", ErrNotFound, "container sidecar"},
		{"two workloads", map[string]string{"a.yaml": dup, "b/b.yaml": dup}, Target{"Deployment", "web", "", "web"}, "acme/web:2", ErrAmbiguous, "b/b.yaml"},
		{"block scalar", map[string]string{"a.yaml": block}, Target{"Deployment", "web", "a", "web"}, "acme/web:2", ErrUnsafe, "block scalar"},
		{"pinned without digest", map[string]string{"a.yaml": pinned}, Target{"Deployment", "web", "a", "web"}, "acme/web:2", ErrUnsafe, "pinned to a digest"},
		{"unknown kind", map[string]string{"a.yaml": dup}, Target{"Service", "web", "", "web"}, "acme/web:2", nil, "not a workload kind"},
		{"broken target named", map[string]string{"a.yaml": "kind: Deployment\nmetadata: {name: web\n"}, Target{"Deployment", "web", "", "web"}, "acme/web:2", nil, "do not parse: a.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(dir, name)
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := SetImage(os.DirFS(dir), ".", tt.target, mustRef(t, tt.image), Options{})
			if err == nil {
				t.Fatal("SetImage succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

func TestPathEscape(t *testing.T) {
	_, err := SetImage(os.DirFS(t.TempDir()), "../etc", Target{"Deployment", "a", "", "a"}, mustRef(t, "a:1"), Options{})
	if err == nil || !strings.Contains(err.Error(), "inside the repository") {
		t.Errorf("err = %v", err)
	}
}

func TestUnchanged(t *testing.T) {
	dir := t.TempDir()
	doc := "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: acme/p:1}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := SetImage(os.DirFS(dir), ".", Target{"Pod", "p", "", "c"}, mustRef(t, "docker.io/acme/p:1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || len(res.Changes) != 1 || res.Changes[0].Changed() {
		t.Errorf("got %+v, want one unchanged value", res)
	}
}

func TestEncodeLike(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"acme/web:1.0", "acme/web:1.0"},
		{"1.10", `"1.10"`},
		{"true", `"true"`},
		{"1e3", `"1e3"`},
		{"null", `"null"`},
		{"v1.2", "v1.2"},
	} {
		if got := encodeLike(0, tt.in); got != tt.want {
			t.Errorf("encodeLike(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzSetImage checks the central promise: for any YAML around an image field, the output differs
// from the input only inside the image value, or the call fails and nothing is produced.
func FuzzSetImage(f *testing.F) {
	f.Add("# c\n", "image: acme/web:1 # x", "\n", "acme/web:2")
	f.Add("---\r\n", "image: 'acme/web:1'", "\r\n", "acme/web:latest@"+digest2)
	f.Add("", `image: "acme/web:1"`, "\n  # tail\n", "docker.io/acme/web:3")
	f.Add("x: &a 1\n", "image: acme/web:1", "\n", "quay.io/acme/web:3")
	f.Fuzz(func(t *testing.T, head, imageLine, tail, newImage string) {
		pushed, err := imageref.Parse(newImage)
		if err != nil {
			return
		}
		doc := head + "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    " + imageLine + tail
		fsys := fstest.MapFS{"p.yaml": &fstest.MapFile{Data: []byte(doc)}}
		res, err := SetImage(fsys, ".", Target{"Pod", "p", "", "c"}, pushed, Options{})
		if err != nil {
			if res.Files != nil {
				t.Fatalf("error %v with files %v", err, res.Files)
			}
			return
		}
		out, ok := res.Files["p.yaml"]
		if !ok {
			return
		}
		c := res.Changes[0]
		// Remove the one changed value from both sides: what remains must be identical.
		i := strings.Index(doc, c.Old)
		j := strings.Index(string(out), c.New)
		if i < 0 || j < 0 || doc[:i] != string(out[:j]) || doc[i+len(c.Old):] != string(out[j+len(c.New):]) {
			// A quoted-for-type value may differ by its quotes; anything else is a bug.
			if !strings.Contains(string(out), `"`+c.New+`"`) {
				t.Fatalf("rewrite touched more than the value:\n%q\n%q", doc, out)
			}
		}
	})
}
