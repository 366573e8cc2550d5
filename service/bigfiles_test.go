package service

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/manifesttest"
)

// webPush is a custom (Jenkins curl) payload pushing registry.example.com/acme/web:1.1.0.
const webPush = `{"push_data":{"tag":"1.1.0"},"repository":{"repo_url":"registry.example.com","namespace":"acme","name":"web"}}`

func webHook(path string) string {
	return fmt.Sprintf("  - id: web\n    token: ${HOOK_TOKEN}\n    source: custom\n    targets: [{repo: apps, path: %s, workload: deployment/web, namespace: team, container: app}]\n", path)
}

// push posts webPush to hook and polls the event until it is done (a big bundle under the race
// detector can take longer than a ?wait= would).
func (h *harness) push(hook string) map[string]any {
	h.t.Helper()
	code, ev := h.post("/hooks/"+hook+"?token="+hookToken, []byte(webPush))
	id, _ := ev["id"].(string)
	if code != 202 || id == "" {
		h.t.Fatalf("POST /hooks/%s: %d %v", hook, code, ev)
	}
	return h.waitDone(id)
}

// gitStep returns the event's git step.
func gitStep(t *testing.T, ev map[string]any) map[string]any {
	t.Helper()
	st := step(ev, "git")
	if st == nil {
		t.Fatalf("no git step in %v", ev)
	}
	return st
}

// TestBigManifestBundle: serve rewrites the target in a 2.6 MB bundle of 3,000 CRDs through the
// updater and a real git server, and the pushed file is the original with only the image's bytes
// changed.
func TestBigManifestBundle(t *testing.T) {
	bundle := manifesttest.CRDBundle(manifesttest.BundleDeploy)
	if len(bundle) < 2_600_000 {
		t.Fatalf("bundle is %d bytes, want 2.6 MB", len(bundle))
	}
	repo := fstest.MapFS{"vendor/argocd/install.yaml": {Data: []byte(bundle)}}
	h := newHarnessRepo(t, repo, webHook("vendor/argocd"))
	if ev := h.push("web"); ev["status"] != "succeeded" {
		t.Fatalf("event %v", ev)
	} else if st := gitStep(t, ev); st["skipped"] != nil {
		t.Errorf("files skipped: %v", st["skipped"])
	}
	got, err := gitserver.Command(h.git.Bare("apps"), "show", "main:vendor/argocd/install.yaml").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(bundle, "registry.example.com/acme/web:1.0.0", "registry.example.com/acme/web:1.1.0", 1)
	if string(got) != want {
		t.Errorf("the pushed bundle differs from the original beyond the image (%d bytes, want %d)", len(got), len(want))
	}
}

// TestFilesNotReadOnTheEvent: files that could hold the target but were not read are named on
// the git step; a target found in a file that was read still lands, and a target that is only in
// a file not read fails the event with the file named.
func TestFilesNotReadOnTheEvent(t *testing.T) {
	other := strings.ReplaceAll(manifesttest.BundleDeploy, "namespace: team", "namespace: other")
	dense := "---\nlist: [" + strings.Repeat("1,", 2<<20) + "1]\n"
	hostile := map[string]string{ // file: the document over its budget
		"vendor-dense.yaml":  "# web\n" + dense,
		"vendor-second.yaml": other + dense,
	}
	overDoc := map[string]int{"vendor-dense.yaml": 1, "vendor-second.yaml": 2}
	repo := fstest.MapFS{
		"apps/web/deploy.yaml":  {Data: []byte(manifesttest.BundleDeploy)},
		"apps/only/vendor.yaml": {Data: []byte(manifesttest.BundleDeploy + dense)},
	}
	for name, data := range hostile {
		repo["apps/web/"+name] = &fstest.MapFile{Data: []byte(data)}
	}
	h := newHarnessRepo(t, repo, webHook("apps/web")+strings.Replace(webHook("apps/only"), "id: web", "id: only", 1))

	ev := h.push("web")
	if ev["status"] != "succeeded" {
		t.Fatalf("target beside files not read: %v", ev)
	}
	st := gitStep(t, ev)
	skipped := fmt.Sprint(st["skipped"])
	for name := range hostile {
		if !strings.Contains(skipped, fmt.Sprintf("skipped apps/web/%s: 4.0 MiB; its document %d decodes to over 150000 YAML nodes", name, overDoc[name])) {
			t.Errorf("skipped %s, want apps/web/%s named", skipped, name)
		}
	}
	if out := h.gitOut("show", "main:apps/web/deploy.yaml"); !strings.Contains(out, `"registry.example.com/acme/web:1.1.0" # pinned by CI`) {
		t.Errorf("the target did not land:\n%s", out)
	}

	ev = h.push("only")
	if ev["status"] != "failed" {
		t.Fatalf("target only in a file not read: %v", ev)
	}
	st = gitStep(t, ev)
	msg := fmt.Sprint(st["error"])
	if !strings.Contains(msg, "not found; 1 file that could hold it was not read: apps/only/vendor.yaml (4.0 MiB; its document 2 decodes to over 150000 YAML nodes") {
		t.Errorf("error %q does not name the file not read", msg)
	}
	if st["reason"] != string(event.ReasonFilesNotRead) {
		t.Errorf("reason = %v, want %q", st["reason"], event.ReasonFilesNotRead)
	}
	if s := fmt.Sprint(st["skipped"]); !strings.Contains(s, "skipped apps/only/vendor.yaml") {
		t.Errorf("skipped = %s", s)
	}
	if out := h.gitOut("show", "main:apps/only/vendor.yaml"); strings.Contains(out, "1.1.0") {
		t.Error("the file not read changed")
	}
}
