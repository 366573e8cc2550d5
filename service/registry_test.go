package service

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/internal/registrytest"
)

// TestVerifyWithTheRegistry runs a real distribution registry: a pushed tag is verified and its
// digest written; a tag never pushed, a digest that differs, and wrong credentials fail and write
// nothing, with no secret in what they say.
func TestVerifyWithTheRegistry(t *testing.T) {
	reg := registrytest.Start(t, nil)
	hook := `  - id: verified
    token: ${HOOK_TOKEN}
    source: custom
    verify: registry
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`
	for _, tt := range []struct {
		name, password string
	}{{"right credentials", registrytest.Password}, {"wrong credentials", "wr0ng-registry-pw"}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessHooks(t, hook, fmt.Sprintf("registries: [{host: %q, username: %s, password: %s, insecure: true}]", reg.Host, registrytest.User, tt.password))
			body := func(tag, digest string) []byte {
				return []byte(fmt.Sprintf(`{"push_data":{"tag":%q,"digest":%q},"repository":{"repo_url":%q,"namespace":"imagehook-demo","name":"website"}}`, tag, digest, reg.Host))
			}
			if tt.password != registrytest.Password {
				reg.Push(t, "imagehook-demo/website", "6.0.0")
				before := h.gitOut("rev-parse", "main")
				code, ev := h.post("/hooks/verified?wait=30s&token="+hookToken, body("6.0.0", ""))
				if code != 200 || ev["status"] != "failed" || !strings.Contains(fmt.Sprint(ev["error"]), "refused the credentials") {
					t.Errorf("wrong credentials: %d %v", code, ev)
				}
				if strings.Contains(fmt.Sprint(ev), tt.password) || strings.Contains(h.logs.String(), tt.password) {
					t.Error("the registry password leaks")
				}
				if h.gitOut("rev-parse", "main") != before {
					t.Error("a commit was made")
				}
				return
			}
			digest := reg.Push(t, "imagehook-demo/website", "5.0.0")
			code, ev := h.post("/hooks/verified?wait=30s&token="+hookToken, body("5.0.0", ""))
			if code != 200 || ev["status"] != "succeeded" || !strings.Contains(fmt.Sprint(step(ev, "verify")["detail"]), digest) {
				t.Fatalf("verified push: %d %v", code, ev)
			}
			if msg := h.gitOut("log", "-1", "--format=%B", "main"); !strings.Contains(msg, "Imagehook-Image: "+reg.Host+"/imagehook-demo/website:5.0.0@"+digest) {
				t.Errorf("trailer lacks the registry's digest:\n%s", msg)
			}
			before := h.gitOut("rev-parse", "main")
			for _, c := range []struct {
				tag, digest, want string
			}{
				{"5.0.1", "", "registry has no tag"},
				{"5.0.0", "sha256:" + strings.Repeat("0", 64), "digest mismatch"},
			} {
				code, ev := h.post("/hooks/verified?wait=30s&token="+hookToken, body(c.tag, c.digest))
				if code != 200 || ev["status"] != "failed" || !strings.Contains(fmt.Sprint(ev["error"]), c.want) {
					t.Errorf("%s %s: %d %v, want failed %q", c.tag, c.digest, code, ev, c.want)
				}
			}
			if after := h.gitOut("rev-parse", "main"); after != before {
				t.Errorf("an unverified push made a commit")
			}
			if strings.Contains(h.logs.String(), registrytest.Password) {
				t.Error("the registry password is in the log")
			}
		})
	}
}

// TestRegistryNotificationsEndToEnd: the registry's own notifications (not a sample payload),
// pointed at a distribution hook, make a commit after a real push.
func TestRegistryNotificationsEndToEnd(t *testing.T) {
	hook := `  - id: registry
    token: ${HOOK_TOKEN}
    source: distribution
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`
	h := newHarnessHooks(t, hook)
	reg := registrytest.Start(t, &registrytest.Notify{URL: "http://" + h.addr + "/hooks/registry", Authorization: "Bearer " + hookToken})
	digest := reg.Push(t, "imagehook-demo/website", "7.7.7")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if strings.Contains(h.gitOut("show", "main:apps/website/deployment.yaml"), "website:7.7.7") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no commit after a real push; log:\n%s", h.logs.String())
		}
	}
	if msg := h.gitOut("log", "-1", "--format=%B", "main"); !strings.Contains(msg, "Imagehook-Source: distribution") || !strings.Contains(msg, digest) {
		t.Errorf("commit message:\n%s", msg)
	}
}

// TestReconcileCatchesMissedWebhooks: imagehook is stopped, tags are pushed, imagehook starts: within
// an interval the newest tag the policy allows is committed, once, with source reconcile, and a
// registry answering 429 is backed off.
func TestReconcileCatchesMissedWebhooks(t *testing.T) {
	reg := registrytest.Start(t, nil)
	target, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var tooMany atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/tags/list") && tooMany.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	host := strings.TrimPrefix(front.URL, "http://")
	deploy, err := fs.ReadFile(examples.Manifests(), "apps/website/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	repo := withFiles(t, map[string]string{"apps/website/deployment.yaml": strings.Replace(string(deploy), "registry.cn-hangzhou.aliyuncs.com", host, 1)})
	hook := `  - id: polled
    token: ${HOOK_TOKEN}
    source: custom
    tags: "semver:<9.0.0"
    reconcile: {interval: 1s}
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`
	h := newHarnessRepo(t, repo, hook, fmt.Sprintf("registries: [{host: %q, username: %s, password: %s, insecure: true}]", host, registrytest.User, registrytest.Password))
	h.stop()
	for _, tag := range []string{"2.0.0", "2.1.0", "9.9.9"} {
		reg.Push(t, "imagehook-demo/website", tag)
	}
	before := h.gitOut("rev-parse", "main")
	h.start()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if strings.Contains(h.gitOut("show", "main:apps/website/deployment.yaml"), "website:2.1.0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reconcile did not commit 2.1.0; log:\n%s", h.logs.String())
		}
	}
	time.Sleep(3 * time.Second) // three more intervals: nothing more may be committed
	if n := h.gitOut("rev-list", "--count", before+"..main"); n != "1" {
		t.Errorf("%s commits after the restart, want exactly 1:\n%s", n, h.gitOut("log", "--format=%s", before+"..main"))
	}
	if msg := h.gitOut("log", "-1", "--format=%B", "main"); !strings.Contains(msg, "Imagehook-Source: reconcile") {
		t.Errorf("commit message:\n%s", msg)
	}
	if tooMany.Load() < 3 {
		t.Errorf("the 429 answers were not seen: %d tag requests", tooMany.Load())
	}
}

// TestCosignSignatureGate: with verify: {cosign: {key}} only an image whose registry digest carries
// a signature made with that key, for that digest and repository, is written. Signatures are made
// in cosign's layout with sigstore's packages (the cosign CLI needs a newer Go than this machine's).
func TestCosignSignatureGate(t *testing.T) {
	reg := registrytest.Start(t, nil)
	key, other := registrytest.NewCosignKey(t), registrytest.NewCosignKey(t)
	pub := filepath.Join(t.TempDir(), "cosign.pub")
	if err := os.WriteFile(pub, key.PublicPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	hook := fmt.Sprintf(`  - id: signed
    token: ${HOOK_TOKEN}
    source: custom
    verify: {cosign: {key: %s}}
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`, pub)
	h := newHarnessHooks(t, hook, fmt.Sprintf("registries: [{host: %q, username: %s, password: %s, insecure: true}]", reg.Host, registrytest.User, registrytest.Password))
	const repo = "imagehook-demo/website"
	post := func(tag string) map[string]any {
		body := fmt.Sprintf(`{"push_data":{"tag":%q},"repository":{"repo_url":%q,"namespace":"imagehook-demo","name":"website"}}`, tag, reg.Host)
		code, ev := h.post("/hooks/signed?wait=30s&token="+hookToken, []byte(body))
		if code != 200 {
			t.Fatalf("%s: %d %v", tag, code, ev)
		}
		return ev
	}

	before := h.gitOut("rev-parse", "main")
	unsigned := reg.Push(t, repo, "8.0.0")
	wrongKey := reg.Push(t, repo, "8.0.1")
	reg.Sign(t, other, repo, wrongKey, repo, wrongKey)
	otherDigest := reg.Push(t, repo, "8.0.2")
	reg.Sign(t, key, repo, otherDigest, repo, unsigned) // a genuine signature, of another digest
	otherRepo := reg.Push(t, repo, "8.0.3")
	reg.Sign(t, key, repo, otherRepo, "someone-else/website", otherRepo)
	for _, c := range []struct{ tag, want string }{
		{"8.0.0", "signature not verified: no signature for " + unsigned},
		{"8.0.1", "not signed with the configured key"},
		{"8.0.2", "signed for another digest, " + unsigned},
		{"8.0.3", `signed for another repository, "` + reg.Host + `/someone-else/website"`},
	} {
		ev := post(c.tag)
		if ev["status"] != "failed" || !strings.Contains(fmt.Sprint(ev["error"]), c.want) {
			t.Errorf("%s: %v %v, want failed %q", c.tag, ev["status"], ev["error"], c.want)
		}
	}
	if h.gitOut("rev-parse", "main") != before {
		t.Fatal("an image without a valid signature was written")
	}

	good := reg.Push(t, repo, "8.1.0")
	reg.Sign(t, key, repo, good, repo, good)
	ev := post("8.1.0")
	if ev["status"] != "succeeded" || !strings.Contains(fmt.Sprint(step(ev, "verify")["detail"]), "cosign signature verified") {
		t.Fatalf("signed image: %v", ev)
	}
	if msg := h.gitOut("log", "-1", "--format=%B", "main"); !strings.Contains(msg, "website:8.1.0@"+good) {
		t.Errorf("commit lacks the verified digest:\n%s", msg)
	}
}

// TestRegistriesAreAskedOnlyWhatConfigAllows (trust row 2): git and a webhook name an image on a
// real registry that registries: does not list. Verify fails the event with the typed reason and
// the host named, reconcile's pass logs the same reason, nothing is committed, and not one request
// reaches that registry (a counting proxy stands in front of it).
func TestRegistriesAreAskedOnlyWhatConfigAllows(t *testing.T) {
	reg := registrytest.Start(t, nil)
	target, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var asked atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	host := strings.TrimPrefix(front.URL, "http://")
	reg.Push(t, "imagehook-demo/website", "9.0.0")
	deploy, err := fs.ReadFile(examples.Manifests(), "apps/website/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	repo := withFiles(t, map[string]string{"apps/website/deployment.yaml": strings.Replace(string(deploy), "registry.cn-hangzhou.aliyuncs.com", host, 1)})
	hooks := `  - id: verified
    token: ${HOOK_TOKEN}
    source: custom
    verify: registry
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
  - id: polled
    token: ${HOOK_TOKEN}
    source: custom
    reconcile: {interval: 1s}
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`
	h := newHarnessRepo(t, repo, hooks, fmt.Sprintf("registries: [{host: registry.example.com, username: %s, password: %s}]", registrytest.User, registrytest.Password))
	before := h.gitOut("rev-parse", "main")
	body := fmt.Sprintf(`{"push_data":{"tag":"9.0.0"},"repository":{"repo_url":%q,"namespace":"imagehook-demo","name":"website"}}`, host)
	code, ev := h.post("/hooks/verified?wait=30s&token="+hookToken, []byte(body))
	st := step(ev, "verify")
	if code != 200 || ev["status"] != "failed" || st["reason"] != "not a configured registry" || !strings.Contains(fmt.Sprint(st["error"]), host) {
		t.Errorf("verify on an unlisted host: %d %v", code, ev)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(h.logs.String(), `reason="not a configured registry"`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("reconcile never said it refused the host; log:\n%s", h.logs.String())
		}
	}
	if h.gitOut("rev-parse", "main") != before {
		t.Error("a commit was made")
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("%d requests reached a registry config does not list", n)
	}
}
