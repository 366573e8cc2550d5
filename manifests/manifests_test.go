package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/event"
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
		target Selector
		image  string
		pin    Pin
		want   int // changed values
		values *Values
		marker string
	}{
		{"deployment-plain", "website", Selector{"Deployment", "website", "web", "website"}, "registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0", PinAuto, 1, nil, ""},
		{"docker-hub-shorthand-double-quoted", ".", Selector{"deployment", "api", "web", "api"}, "docker.io/acme/api:1.1", PinAuto, 1, nil, ""},
		{"single-quoted-statefulset", ".", Selector{"StatefulSet", "db", "data", "db"}, "postgres:16.2", PinAuto, 1, nil, ""},
		{"crlf-bom-daemonset", ".", Selector{"DaemonSet", "agent", "kube-system", "agent"}, "quay.io/acme/agent:v2.1.0", PinAuto, 1, nil, ""},
		{"multidoc-flow-mapping", ".", Selector{"Deployment", "website", "web", "website"}, "index.docker.io/acme/website:1.1.0", PinAuto, 1, nil, ""},
		{"cronjob-init-container", ".", Selector{"CronJob", "report", "web", "migrate"}, "acme/report:2.0", PinAuto, 1, nil, ""},
		{"kustomize-namespace", ".", Selector{"Deployment", "website", "web", "website"}, "acme/website:1.1.0", PinAuto, 1, nil, ""},
		{"helm-template-skipped", ".", Selector{"Deployment", "website", "web", "website"}, "registry.cn-hangzhou.aliyuncs.com/acme/website:1.1.0", PinAuto, 1, nil, ""},
		{"digest-pinned-stays-pinned", ".", Selector{"Deployment", "website", "web", "website"}, "acme/website:1.1.0@" + digest2, PinAuto, 1, nil, ""},
		{"repushed-tag-gets-digest", ".", Selector{"Deployment", "website", "web", "website"}, "acme/website:latest@" + digest2, PinAuto, 1, nil, ""},
		{"all-references", ".", Selector{}, "acme/website:1.1.0", PinAuto, 2, nil, ""},
		{"kustomize-overlay-newtag", "overlays/prod", Selector{"Deployment", "web", "web", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"kustomize-insert-newtag", ".", Selector{"Deployment", "web", "", "web"}, "registry.example.com/acme/web:2.0.0", PinAuto, 1, nil, ""},
		{"kustomize-tag-drops-digest", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"kustomize-tag-and-digest", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1@" + digest2, PinAuto, 1, nil, ""},
		{"kustomize-flow-entry", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"kustomize-crlf-insert", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:3.0.0", PinAuto, 1, nil, ""},
		{"helm-repository-tag", ".", Selector{}, "docker.io/acme/web:1.1.0", PinAuto, 1, &Values{File: "values.yaml", Repository: "image.repository", Tag: "image.tag"}, ""},
		{"helm-numeric-tag-quoted", ".", Selector{}, "acme/web:2.10", PinAuto, 1, &Values{File: "values.yaml", Repository: "image.repository", Tag: "image.tag"}, ""},
		{"helm-registry-digest", ".", Selector{}, "registry.example.com/acme/web:1.1@" + digest2, PinAuto, 2,
			&Values{File: "values.yaml", Registry: "app.image.registry", Repository: "app.image.repository", Tag: "app.image.tag", Digest: "app.image.digest"}, ""},
		{"helm-full-image", ".", Selector{}, "acme/web:1.1", PinAuto, 1, &Values{File: "values.yaml", Image: "web.image"}, ""},
		{"marker-imagehook-full", ".", Selector{}, "acme/web:1.1", PinAuto, 1, nil, "website"},
		{"marker-tag-and-name", ".", Selector{}, "acme/web:1.1", PinAuto, 1, nil, "website"},
		{"marker-flux-imagepolicy", ".", Selector{}, "acme/web:1.1", PinAuto, 1, nil, "flux-system:website"},
		{"marker-fleet-imagescan", ".", Selector{}, "acme/web:1.1", PinAuto, 1, nil, "website"},
		{"argo-rollout", ".", Selector{"Rollout", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"job", ".", Selector{"Job", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"replicaset", ".", Selector{"ReplicaSet", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"replicationcontroller", ".", Selector{"ReplicationController", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"anchors-aliases", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"unicode-flow-container", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"image-key-first-no-final-newline", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"tab-before-comment", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"document-end-markers", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		// kyaml pitfalls (positions from imagehook's own decoder loop, never from kio readers).
		{"two-workloads-after-document-end", ".", Selector{"Deployment", "web", "b", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"merge-keys", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"kind-list", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"document-tag-map", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:1.1", PinAuto, 1, nil, ""},
		{"helm-yaml11-tag", ".", Selector{}, "acme/web:010", PinAuto, 1, &Values{File: "values.yaml", Repository: "image.repository", Tag: "image.tag"}, ""},
		{"kustomize-yaml11-newtag", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:on", PinAuto, 1, nil, ""},
		{"kustomize-insert-no-final-newline", ".", Selector{"Deployment", "web", "", "web"}, "acme/web:yes", PinAuto, 1, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			if err := os.CopyFS(work, os.DirFS(filepath.Join("testdata", tt.name, "original"))); err != nil {
				t.Fatal(err)
			}
			fsys, ref, opts := os.DirFS(work), mustRef(t, tt.image), Options{Pin: tt.pin}
			var res Result
			var err error
			switch {
			case tt.values != nil:
				res, err = SetValues(fsys, tt.dir, *tt.values, ref, opts)
			case tt.marker != "":
				res, err = SetMarkers(fsys, tt.dir, tt.marker, ref, opts)
			default:
				res, err = RewriteSelected(fsys, tt.dir, tt.target, ref, opts)
			}
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
			kustomizeBuild(t, filepath.Join("testdata", tt.name, "expected"))
		})
	}
	if len(tests) < 30 {
		t.Errorf("%d golden cases, want at least 30", len(tests))
	}
}

// kustomizeBuild runs kubectl kustomize on every kustomization of an expected tree: a rewrite must
// leave it buildable.
func kustomizeBuild(t *testing.T, root string) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		return // kubectl is on the project's machines; elsewhere the byte comparison stands alone
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		if out, err := exec.Command(kubectl, "kustomize", filepath.Dir(p)).CombinedOutput(); err != nil {
			t.Errorf("kubectl kustomize %s: %v\n%s", filepath.Dir(p), err, out)
		}
		return nil
	})
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
		target Selector
		image  string
		want   error
		msg    string
	}{
		{"workload missing", map[string]string{"a.yaml": dup}, Selector{"Deployment", "api", "", "api"}, "acme/api:2", ErrNotFound, "deployment/api"},
		{"container missing", map[string]string{"a.yaml": dup}, Selector{"Deployment", "web", "", "sidecar"}, "acme/web:2", ErrNotFound, "container sidecar"},
		{"two workloads", map[string]string{"a.yaml": dup, "b/b.yaml": dup}, Selector{"Deployment", "web", "", "web"}, "acme/web:2", ErrAmbiguous, "b/b.yaml"},
		{"block scalar", map[string]string{"a.yaml": block}, Selector{"Deployment", "web", "a", "web"}, "acme/web:2", ErrUnsafe, "block scalar"},
		{"pinned without digest", map[string]string{"a.yaml": pinned}, Selector{"Deployment", "web", "a", "web"}, "acme/web:2", ErrUnsafe, "pinned to a digest"},
		{"unknown kind", map[string]string{"a.yaml": dup}, Selector{"Service", "web", "", "web"}, "acme/web:2", nil, "not a workload kind"},
		{"broken target named", map[string]string{"a.yaml": "kind: Deployment\nmetadata: {name: web\n"}, Selector{"Deployment", "web", "", "web"}, "acme/web:2", ErrFilesNotRead, "could hold it was not read: a.yaml (not valid YAML"},
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
			_, err := RewriteSelected(os.DirFS(dir), ".", tt.target, mustRef(t, tt.image), Options{})
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

func TestOtherLayoutErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("values.yaml", "image:\n  repository: acme/web\n  tag: 1.0\n")
	write("kustomization.yaml", "images:\n- digest: "+digest1+"\n  name: acme/web\n")
	fsys, ref := os.DirFS(dir), mustRef(t, "acme/web:1.1")
	if _, err := SetValues(fsys, ".", Values{File: "values.yaml", Repository: "image.repo", Tag: "image.tag"}, ref, Options{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing values path: %v", err)
	}
	if _, err := SetValues(fsys, ".", Values{File: "../values.yaml", Image: "x"}, ref, Options{}); err == nil {
		t.Error("values file outside the repository accepted")
	}
	if _, err := SetValues(fsys, ".", Values{File: "values.yaml", Repository: "image.repository", Tag: "image.tag"}, mustRef(t, "acme/other:1"), Options{}); !errors.Is(err, ErrOtherRepository) {
		t.Errorf("other repository: %v", err)
	}
	if _, err := SetMarkers(fsys, ".", "nope", ref, Options{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing marker: %v", err)
	}
	// Removing the digest, the entry's first key, cannot be done by deleting its line.
	if _, err := RewriteSelected(fsys, ".", Selector{"Deployment", "web", "", "web"}, ref, Options{}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("unsafe kustomize edit: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml")); !strings.Contains(string(data), digest1) {
		t.Error("a refused edit changed the file")
	}
}

func TestPathEscape(t *testing.T) {
	_, err := RewriteSelected(os.DirFS(t.TempDir()), "../etc", Selector{"Deployment", "a", "", "a"}, mustRef(t, "a:1"), Options{})
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
	res, err := RewriteSelected(os.DirFS(dir), ".", Selector{"Pod", "p", "", "c"}, mustRef(t, "docker.io/acme/p:1"), Options{})
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
		res, err := RewriteSelected(fsys, ".", Selector{"Pod", "p", "", "c"}, pushed, Options{})
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

// TestHostileFiles: an alias bomb and an oversized file cost little and change nothing.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	var bomb strings.Builder
	bomb.WriteString("a0: &a0 [web, web, web, web, web, web, web, web, web]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	kust := bomb.String() + "images:\n- name: acme/web\n  newTag: \"1.0\"\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("# web web web web web web web web web web web web web web web web\n", DefaultMaxFileBytes/64+10)
	if err := os.WriteFile(filepath.Join(dir, "huge.yaml"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := RewriteSelected(os.DirFS(dir), ".", Selector{"Deployment", "web", "", "web"}, mustRef(t, "acme/web:1.1"), Options{})
	if err == nil {
		t.Fatal("alias bomb accepted")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml")); string(data) != kust {
		t.Error("file changed")
	}
}

func TestRegistryAliases(t *testing.T) {
	aliases := [][]string{{"registry.cn-hangzhou.aliyuncs.com", "registry-vpc.cn-hangzhou.aliyuncs.com"}}
	cur := mustRef(t, "registry-vpc.cn-hangzhou.aliyuncs.com/acme/web:1.0")
	tests := []struct {
		pushed, want string
		opts         Options
		err          error
	}{
		{"registry.cn-hangzhou.aliyuncs.com/acme/web:1.1", "registry-vpc.cn-hangzhou.aliyuncs.com/acme/web:1.1", Options{RegistryAliases: aliases}, nil},
		{"registry.cn-hangzhou.aliyuncs.com/acme/web:1.1", "registry.cn-hangzhou.aliyuncs.com/acme/web:1.1", Options{RegistryAliases: aliases, WriteHost: true}, nil},
		{"quay.io/acme/web:1.1", "", Options{RegistryAliases: aliases}, ErrOtherRepository},
		{"quay.io/acme/web:1.1", "registry-vpc.cn-hangzhou.aliyuncs.com/acme/web:1.1", Options{}, nil},
		{"registry.cn-hangzhou.aliyuncs.com/acme/api:1.1", "", Options{}, ErrOtherRepository},
	}
	for _, tt := range tests {
		got, err := NewValue(cur, mustRef(t, tt.pushed), tt.opts)
		if got != tt.want || !errors.Is(err, tt.err) && !(err == nil && tt.err == nil) {
			t.Errorf("%s %+v: got %q, %v; want %q, %v", tt.pushed, tt.opts, got, err, tt.want, tt.err)
		}
	}
}

// FuzzKustomize feeds arbitrary kustomizations: an edit either fails and writes nothing, or the
// result keeps everything but the entry's newTag/digest/newName (verified inside), and never panics.
func FuzzKustomize(f *testing.F) {
	f.Add("images:\n- name: acme/web\n  newTag: \"1.0\"\n", "acme/web:1.1")
	f.Add("images:\n- name: acme/web\n  digest: "+digest1+"\n  newTag: '1'\n", "acme/web:2@"+digest2)
	f.Add("images: [{name: acme/web}]\n", "acme/web:2")
	f.Add("# c\r\nimages:\r\n  - name: acme/web # x\r\n    newName: r.example.com/acme/web\r\n", "r.example.com/acme/web:3")
	f.Fuzz(func(t *testing.T, kust, image string) {
		pushed, err := imageref.Parse(image)
		if err != nil {
			return
		}
		fsys := fstest.MapFS{"kustomization.yaml": &fstest.MapFile{Data: []byte(kust)}}
		res, found, err := setKustomizeImage(fsys, ".", pushed, Options{})
		if err != nil && len(res.Files) > 0 {
			t.Fatalf("error %v with files", err)
		}
		if !found || err != nil {
			return
		}
		if out, ok := res.Files["kustomization.yaml"]; ok {
			var v any
			if yaml.Unmarshal(out, &v) != nil {
				t.Fatalf("result does not parse:\n%s", out)
			}
		}
	})
}

// FuzzMarkersAndValues: marker comments and values paths over arbitrary YAML never panic, and a
// rewrite always parses again.
func FuzzMarkersAndValues(f *testing.F) {
	f.Add("image:\n  repository: acme/web\n  tag: \"1.0\" # {\"$imagehook\": \"web:tag\"}\n", "acme/web:1.1")
	f.Add("x: acme/web:1 # {\"$imagepolicy\": \"web\"}\n", "acme/web:2")
	f.Fuzz(func(t *testing.T, doc, image string) {
		pushed, err := imageref.Parse(image)
		if err != nil {
			return
		}
		fsys := fstest.MapFS{"v.yaml": &fstest.MapFile{Data: []byte(doc)}}
		for _, res := range []func() (Result, error){
			func() (Result, error) { return SetMarkers(fsys, ".", "web", pushed, Options{}) },
			func() (Result, error) {
				return SetValues(fsys, ".", Values{File: "v.yaml", Repository: "image.repository", Tag: "image.tag"}, pushed, Options{})
			},
		} {
			r, err := res()
			if err != nil {
				if len(r.Files) > 0 {
					t.Fatalf("error %v with files", err)
				}
				continue
			}
			for _, out := range r.Files {
				if _, err := parseAll(out); err != nil {
					t.Fatalf("rewrite does not parse: %v\n%s", err, out)
				}
			}
		}
	})
}

// TestBudget: every file that could hold the target but is not read is named with its typed
// reason — over the per-file limit, a document over its node budget, past the event's bytes or
// kept nodes, not YAML — and the target in an ordinary file is still found.
func TestBudget(t *testing.T) {
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: team}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: acme/web:1.0\n"
	other := strings.ReplaceAll(deploy, "team", "other")
	dense := "# web\nlist: [" + strings.Repeat("1,", 60_000) + "1]\n"
	tests := []struct {
		name   string
		budget Budget
		file   string // the one file not read, beside z/deploy.yaml
		data   string
		reason event.Reason
		detail string
	}{
		{"file over the limit", Budget{MaxFileBytes: 1 << 20}, "big/file.yaml", "# web\n" + strings.Repeat("k: web\n", 4<<20/7),
			event.ReasonFileTooBig, "4.0 MiB, over the 1 MiB limit per file"},
		{"document over its budget", Budget{MaxDocumentNodes: 50_000}, "dense/nodes.yaml", dense,
			event.ReasonDocumentTooBig, "its document 1 decodes to over 50000 YAML nodes, the budget of one document"},
		{"later document over its budget", Budget{MaxDocumentNodes: 50_000}, "dense/third.yaml", other + "---\nkind: ConfigMap\n---\n" + dense,
			event.ReasonDocumentTooBig, "its document 3 decodes"},
		// The small file is read first, though its path sorts last: big files cannot crowd it out.
		{"past the event's bytes", Budget{MaxBytes: 64 << 10}, "a/comments.yaml", strings.Repeat("# web\n", 100<<10/6),
			event.ReasonEventBudget, "past the event's budget of 64 KiB of YAML"},
		{"past the event's kept nodes", Budget{MaxNodes: 200}, "a/copies.yaml", strings.Repeat(other+"---\n", 10),
			event.ReasonEventBudget, "keeping its documents would pass the event's budget of 200 YAML nodes"},
		{"not YAML", Budget{}, "chart/templates/deploy.yaml", "kind: Deployment\nmetadata: {name: {{ .Values.web }}\n",
			event.ReasonNotYAML, "not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"z/deploy.yaml": {Data: []byte(deploy)}, tt.file: {Data: []byte(tt.data)}}
			budget := tt.budget
			res, err := RewriteSelected(fsys, ".", Selector{"Deployment", "web", "team", "web"}, mustRef(t, "acme/web:1.1"), Options{Budget: &budget})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Files) != 1 || res.Files["z/deploy.yaml"] == nil {
				t.Fatalf("files = %v", res.Files)
			}
			if len(res.NotRead) != 1 {
				t.Fatalf("not read = %v, want %s alone", res.NotRead, tt.file)
			}
			got := res.NotRead[0]
			if got.File != tt.file || got.Reason != tt.reason || !strings.Contains(got.Detail, tt.detail) {
				t.Errorf("not read = %+v, want %s, %q, a detail with %q", got, tt.file, tt.reason, tt.detail)
			}
			if got.Malformed() != (tt.reason == event.ReasonNotYAML) {
				t.Errorf("Malformed() = %v for %q", got.Malformed(), got.Reason)
			}
			if want := []string{"skipped " + got.File + ": " + got.Detail}; !slices.Equal(res.Warnings, want) {
				t.Errorf("warnings = %q, want %q", res.Warnings, want)
			}
			if budget.nodes == 0 || budget.nodes > 100 && tt.reason != event.ReasonEventBudget {
				t.Errorf("budget kept %d nodes, want the deployment's few", budget.nodes)
			}
		})
	}
}

// TestNotFoundNamesFilesNotRead: a target that is only in files not read fails with those files
// named, typed for code (ErrNotFound, ErrFilesNotRead, event.ReasonFilesNotRead) and for people.
func TestNotFoundNamesFilesNotRead(t *testing.T) {
	deploy := deploymentDoc("web", "acme/web:1.0")
	fsys := fstest.MapFS{
		"big.yaml":   {Data: []byte(deploy + "---\n# " + strings.Repeat("x", 2<<20) + "\n")},
		"dense.yaml": {Data: []byte("# web\nlist: [" + strings.Repeat("1,", 60_000) + "1]\n")},
		"other.yaml": {Data: []byte(deploymentDoc("api", "acme/api:1.0"))},
	}
	opts := Options{Budget: &Budget{MaxFileBytes: 1 << 20, MaxDocumentNodes: 50_000}}
	for _, place := range []Place{
		{Path: ".", Workload: Selector{"Deployment", "web", "", "app"}},
		{Path: "big.yaml", Workload: Selector{"Deployment", "web", "", "app"}},
		{Path: ".", Marker: "web"},
	} {
		res, err := Rewrite(fsys, place, mustRef(t, "acme/web:1.1"), opts)
		var fe *FilesNotReadError
		if !errors.As(err, &fe) || !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrFilesNotRead) || event.ReasonOf(err) != event.ReasonFilesNotRead {
			t.Fatalf("%+v: err = %v, want files not read", place, err)
		}
		if len(res.Files) > 0 {
			t.Errorf("%+v: files %v written on an error", place, res.Files)
		}
		// A file over the limit is never opened, so it could hold anything; the dense file can hold
		// the workload's name, not a marker.
		for _, want := range []string{"big.yaml (2.0 MiB, over the 1 MiB limit per file)", "dense.yaml (117 KiB; its document 1 decodes to over 50000"} {
			if (place.Path == "big.yaml" || place.Marker != "") && strings.HasPrefix(want, "dense") {
				continue
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%+v: err = %q, want it to name %q", place, err, want)
			}
		}
		if len(fe.Files) != len(res.NotRead) {
			t.Errorf("%+v: error names %d files, result %d", place, len(fe.Files), len(res.NotRead))
		}
	}
}

// readAhead bounds, in estimated nodes, what the decoder has read past a document when it
// returns it (its buffers hold about 2 KiB, each byte counting at most two).
const readAhead = 4096

// FuzzBudget: whatever the file, read refuses only what is over the per-file limit, decode never
// hands out a document over the per-document budget (within the decoder's read-ahead), and every
// refusal is a NotRead.
func FuzzBudget(f *testing.F) {
	f.Add([]byte("a: [1,2,3]\n"), int64(10), 5)
	f.Add([]byte("- web\n- web\n"), int64(1<<20), 1)
	f.Add([]byte("? a\r? b\r? c\r"), int64(1<<20), 2)
	f.Add([]byte("[a: b, c: d, e: f]\n---\n[a, b]\n...\n"), int64(1<<20), 3)
	f.Fuzz(func(t *testing.T, data []byte, maxFile int64, maxDoc int) {
		b := &Budget{MaxFileBytes: maxFile, MaxDocumentNodes: maxDoc}
		fsys := fstest.MapFS{"f.yaml": {Data: data}}
		got, err := b.read(fsys, "f.yaml")
		if err != nil {
			if !errors.Is(err, ErrSkipped) || int64(len(data)) <= b.maxFile() {
				t.Fatalf("read refused %d bytes under a %d limit: %v", len(data), b.maxFile(), err)
			}
			return
		}
		_, _, limit := b.limits()
		_, err = b.decode("f.yaml", got, func(d *yaml.Node) bool {
			if n := countNodes(d); n > limit+readAhead {
				t.Fatalf("a document of %d nodes decoded under a budget of %d", n, limit)
			}
			return false
		})
		if err != nil && !errors.Is(err, ErrSkipped) {
			t.Fatalf("decode error not marked skipped: %v", err)
		}
	})
}

// FuzzEstimate: the node estimate is an upper bound of what any YAML text decodes to, which is
// what makes the per-document budget hold while decoding.
func FuzzEstimate(f *testing.F) {
	for _, s := range []string{"a: [1,2,3]\n", "- web\n- web\n", "? a\r? b\r", "[a: b, c: d]", "{a: b}\n...\n---\nx\n", "- - - [[{}]]\n", "a\u2028b: c\u0085d: e"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := parseAll(data)
		if err != nil {
			return
		}
		n := 0
		for _, d := range docs {
			n += countNodes(d)
		}
		if est := estimateNodes(data); n > est+len(docs) {
			t.Fatalf("%q decodes to %d nodes, estimated %d", data, n, est)
		}
	})
}

// TestAliasNamesNothing: an alias's value is its anchor's name, so `name: *web` does not name a
// container "web" (kyaml would read the anchor name as the value).
func TestAliasNamesNothing(t *testing.T) {
	doc := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, labels: {x: &web sidecar}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: *web\n        image: acme/web:1.0\n"
	fsys := fstest.MapFS{"d.yaml": {Data: []byte(doc)}}
	_, err := RewriteSelected(fsys, ".", Selector{"Deployment", "app", "", "web"}, mustRef(t, "acme/web:1.1"), Options{})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("err = %v, want not found: the alias names nothing", err)
	}
	// Two containers with the same name are both found (VisitElements, not the first match).
	two := strings.Replace(doc, "      - name: *web\n        image: acme/web:1.0\n", "      - name: web\n        image: acme/web:1.0\n      - name: web\n        image: acme/web:1.0\n", 1)
	res, err := RewriteSelected(fstest.MapFS{"d.yaml": {Data: []byte(two)}}, ".", Selector{"Deployment", "app", "", "web"}, mustRef(t, "acme/web:1.1"), Options{})
	if err != nil || len(res.Changes) != 2 {
		t.Errorf("changes %v, err %v: want both containers", res.Changes, err)
	}
}
