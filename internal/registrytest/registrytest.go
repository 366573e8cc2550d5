// Package registrytest runs a real OCI registry for tests: the CNCF distribution registry, built by
// hack/registry/build.sh, on loopback with filesystem storage and htpasswd auth, optionally sending
// its notifications somewhere.
package registrytest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Credentials of the test registry.
const (
	User     = "pusher"
	Password = "registry-pa55-do-not-log"
)

// Registry is a running registry.
type Registry struct {
	Host string // 127.0.0.1:port
}

// Notify sends the registry's notifications to url with an Authorization header.
type Notify struct {
	URL           string
	Authorization string
}

// Binary returns the registry binary: $IMAGEHOOK_REGISTRY_BIN, or the build script's cache. Tests
// skip with a message when it is missing (.ci/run builds it).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("IMAGEHOOK_REGISTRY_BIN"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "imagehook", "registry", "v3.1.2", "registry")
	if _, err := os.Stat(p); err != nil {
		t.Skip("no OCI registry binary: run hack/registry/build.sh (make test and .ci/run do)")
	}
	return p
}

// Start runs a registry until the test ends.
func Start(t testing.TB, notify *Notify) *Registry {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(User+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: %s
  secret: registrytest
auth:
  htpasswd: {realm: registrytest, path: %s}
`, filepath.Join(dir, "data"), addr, htpasswd)
	if notify != nil {
		cfg += fmt.Sprintf(`notifications:
  endpoints:
    - name: imagehook
      url: %s
      headers: {Authorization: [%q]}
      timeout: 5s
      threshold: 3
      backoff: 1s
`, notify.URL, notify.Authorization)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	logs, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("registry not ready:\n%s", data)
		}
	}
	return &Registry{Host: addr}
}

// Push writes a random image as repo:tag and returns its digest.
func (r *Registry) Push(t testing.TB, repo, tag string) string {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: User, Password: Password})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
