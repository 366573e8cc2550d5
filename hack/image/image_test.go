package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/internal/smtptest"
)

// The container tests run the image in Debian's podman, the way ../shared/test-peers.md says works
// on these machines: runc, vfs storage, cgroupfs, no default ulimits, host network.
type engine struct {
	t    *testing.T
	conf string
}

func newEngine(t *testing.T) *engine {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("no container engine: install podman and runc (apt-get install -y podman runc) to run the image tests; .ci/run does")
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &engine{t: t, conf: conf}
}

func (e *engine) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append([]string{"--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+e.conf)
	return cmd
}

func (e *engine) run(args ...string) string {
	e.t.Helper()
	out, err := e.cmd(args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func root(t *testing.T) string {
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func make(t *testing.T, target string, vars ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{target}, vars...)...)
	cmd.Dir = root(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	return string(out)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestImage builds the image with `make image` (no daemon, nothing pulled), loads it into podman
// and runs it; then builds the Dockerfile with `podman build` and runs that the same way.
func TestImage(t *testing.T) {
	e := newEngine(t)
	// The test runs amd64 images only; the arm64 build is the same code cross-compiled, and its
	// cold compile would cost CI minutes (IMAGEHOOK_IMAGE_ARCHES="amd64 arm64" to build both).
	arches := os.Getenv("IMAGEHOOK_IMAGE_ARCHES")
	if arches == "" {
		arches = "amd64"
	}
	out := make(t, "image", "IMAGE_ARCHES="+arches)
	tarball := filepath.Join(root(t), "bin", "image-linux-amd64.tar")
	st, err := os.Stat(tarball)
	if err != nil {
		t.Fatalf("no tarball: %v\n%s", err, out)
	}
	t.Logf("image linux/amd64: %.1f MB tarball\n%s", float64(st.Size())/(1<<20), out)
	if st.Size() > 40<<20 {
		t.Errorf("image is %.1f MB, want under 40 MB", float64(st.Size())/(1<<20))
	}
	loaded := e.run("load", "-i", tarball)
	ref := loaded[strings.LastIndex(loaded, "Loaded image: ")+len("Loaded image: "):]
	ref = strings.TrimSpace(strings.Split(ref, "\n")[0])
	t.Cleanup(func() { _ = e.cmd("rmi", "-f", ref).Run() })
	t.Run("make image", func(t *testing.T) { checkImage(t, e, ref, true) })

	make(t, "build")
	built := "localhost/imagehook:dockerfile-test"
	e.run("build", "--network", "none", "-t", built, "--build-arg", "REVISION=test-revision", root(t))
	t.Cleanup(func() { _ = e.cmd("rmi", "-f", built).Run() })
	t.Run("Dockerfile", func(t *testing.T) { checkImage(t, e, built, false) })
}

func checkImage(t *testing.T, parent *engine, ref string, tlsCheck bool) {
	e := &engine{t: t, conf: parent.conf}
	var cfgs []struct {
		Config struct {
			User       string
			WorkingDir string
			Entrypoint []string
			Cmd        []string
			Labels     map[string]string
			Volumes    map[string]any
		}
	}
	if err := json.Unmarshal([]byte(e.run("image", "inspect", ref)), &cfgs); err != nil || len(cfgs) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	c := cfgs[0].Config
	if c.User != "65532:65532" || c.WorkingDir != "/data" || c.Volumes["/data"] == nil || c.Labels["org.opencontainers.image.source"] == "" ||
		c.Labels["org.opencontainers.image.revision"] == "" || strings.Join(c.Entrypoint, " ") != "/usr/local/bin/imagehook" || c.Cmd[0] != "serve" {
		t.Errorf("image config = %+v", c)
	}
	if v := e.run("run", "--rm", "--network", "host", ref, "version"); !strings.Contains(v, "commit ") {
		t.Errorf("version = %q, want the commit", v)
	}

	// serve: the quickstart, in its own data volume.
	port := freePort(t)
	vol := fmt.Sprintf("imagehook-test-%d", port)
	name := "imagehook-test-" + fmt.Sprint(port)
	e.run("volume", "create", vol)
	t.Cleanup(func() { _ = e.cmd("rm", "-f", name).Run(); _ = e.cmd("volume", "rm", "-f", vol).Run() })
	e.run("run", "-d", "--name", name, "--network", "host", "-v", vol+":/data", ref, "serve", "--data-dir", "/data", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(base + "/healthz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz: %v\n%s", err, e.run("logs", name))
		}
	}
	pid := e.run("inspect", "--format", "{{.State.Pid}}", name)
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	if !strings.Contains(string(status), "\nUid:\t65532\t65532\t65532\t65532") {
		t.Errorf("process does not run as 65532:\n%s", status)
	}
	body := `{"push_data":{"digest":"sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917","pushed_at":"2026-11-27 10:00:00","tag":"1.1.0"},"repository":{"name":"website","namespace":"imagehook-demo","region":"cn-hangzhou","repo_full_name":"imagehook-demo/website"}}`
	resp, err := http.Post(base+"/hooks/quickstart?token=quickstart-token&wait=60s", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(data, []byte(`"succeeded"`)) {
		t.Fatalf("quickstart delivery: %d %s\n%s", resp.StatusCode, data, e.run("logs", name))
	}
	mount := e.run("volume", "inspect", "--format", "{{.Mountpoint}}", vol)
	git := exec.Command("git", "--git-dir", filepath.Join(mount, "quickstart", "manifests.git"), "log", "-1", "--format=%s")
	if msg, err := git.CombinedOutput(); err != nil || !strings.Contains(string(msg), "1.1.0") {
		t.Errorf("no commit in the data volume: %v %s", err, msg)
	}
	if tlsCheck {
		checkTLS(t, e, ref)
	}
}

// checkTLS proves certificate verification is on inside the image: a TLS server signed by a CA the
// system does not trust is refused, and accepted with caFile.
func checkTLS(t *testing.T, e *engine, ref string) {
	caPEM, cert := smtptest.TestCA(t)
	srv := smtptest.Start(t, smtptest.Options{ImplicitTLS: true}, cert)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", string(caPEM))
	mail := fmt.Sprintf("mail: {host: 127.0.0.1, port: %d, tls: implicit, username: %s, password: %s, from: %s%%s}\n", srv.Port, smtptest.User, smtptest.Password, smtptest.User)
	write("untrusted.yaml", fmt.Sprintf(mail, ""))
	write("trusted.yaml", fmt.Sprintf(mail, ", caFile: /cfg/ca.pem"))
	out, err := e.cmd("run", "--rm", "--network", "host", "-v", dir+":/cfg:ro", ref, "send-test-mail", "--config", "/cfg/untrusted.yaml", "--to", "ops@example.com").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate") {
		t.Errorf("an untrusted certificate was accepted: %v\n%s", err, out)
	}
	if out := e.run("run", "--rm", "--network", "host", "-v", dir+":/cfg:ro", ref, "send-test-mail", "--config", "/cfg/trusted.yaml", "--to", "ops@example.com"); !strings.Contains(out, "sent a test mail") {
		t.Errorf("with caFile: %s", out)
	}
}
