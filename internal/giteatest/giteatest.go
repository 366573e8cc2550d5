// Package giteatest runs a real Gitea for tests — built by hack/gitea/build.sh, on loopback, with
// SQLite — with an admin user and an API token, and offers the few API calls the tests make.
package giteatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/internal/gitserver"
)

// The admin account of the test forge.
const (
	User     = "imagehook"
	Password = "gitea-pa55-do-not-log"
)

// Gitea is a running forge.
type Gitea struct {
	// URL is the web and git base, http://127.0.0.1:port.
	URL string
	// Token is an API token of User with every scope.
	Token string
	bin   string
	cfg   string
	work  string
}

// Binary returns the Gitea binary: $IMAGEHOOK_GITEA_BIN, or the build script's cache. Tests skip
// with a message when it is missing (.ci/run builds it).
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("IMAGEHOOK_GITEA_BIN"); b != "" {
		return b
	}
	cache, err := os.UserCacheDir()
	if err == nil {
		b := filepath.Join(cache, "imagehook", "gitea", "v1.26.0", "gitea")
		if _, err := os.Stat(b); err == nil {
			return b
		}
	}
	t.Skip("Gitea not built: run hack/gitea/build.sh (or set IMAGEHOOK_GITEA_BIN)")
	return ""
}

// Start runs Gitea until the test ends.
func Start(t testing.TB) *Gitea {
	t.Helper()
	bin := Binary(t)
	static, err := os.ReadFile(filepath.Join(filepath.Dir(bin), "static-root"))
	if err != nil {
		t.Fatalf("gitea: %v (rebuild with hack/gitea/build.sh)", err)
	}
	work := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	g := &Gitea{URL: fmt.Sprintf("http://127.0.0.1:%d", port), bin: bin, cfg: filepath.Join(work, "app.ini"), work: work}
	g.configure(t, port, strings.TrimSpace(string(static)))
	g.run(t, "migrate")
	g.run(t, "admin", "user", "create", "--admin", "--username", User, "--password", Password,
		"--email", User+"@example.com", "--must-change-password=false")
	g.Token = strings.TrimSpace(lastLine(g.run(t, "admin", "user", "generate-access-token", "--username", User,
		"--token-name", "imagehook", "--scopes", "all", "--raw")))

	g.serve(t)
	return g
}

// appINI is the test server's configuration: its work directory (%[2]s), port and URL, static
// files, and the secrets Gitea generates (%[6]s, %[7]s).
const appINI = `APP_NAME = imagehook-test
RUN_MODE = prod
RUN_USER = %[1]s
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true
WORK_PATH = %[2]s

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[3]d
ROOT_URL = %[4]s/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = %[5]s
APP_DATA_PATH = %[2]s/data

[database]
DB_TYPE = sqlite3
PATH = %[2]s/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = %[2]s/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = %[6]s
INTERNAL_TOKEN = %[7]s

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true

[actions]
ENABLED = false

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 10

[log]
MODE = file
LEVEL = Warn
ROOT_PATH = %[2]s/log
`

// configure writes the server's app.ini, with secrets Gitea generates for it.
func (g *Gitea) configure(t testing.TB, port int, static string) {
	t.Helper()
	secret := func(kind string) string {
		return strings.TrimSpace(lastLine(g.run(t, "generate", "secret", kind)))
	}
	ini := fmt.Sprintf(appINI, currentUser(), g.work, port, g.URL, static, "placeholder", "placeholder")
	if err := os.WriteFile(g.cfg, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	ini = strings.Replace(ini, "SECRET_KEY = placeholder", "SECRET_KEY = "+secret("SECRET_KEY"), 1)
	ini = strings.Replace(ini, "INTERNAL_TOKEN = placeholder", "INTERNAL_TOKEN = "+secret("INTERNAL_TOKEN"), 1)
	if err := os.WriteFile(g.cfg, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serve starts Gitea's web server until the test ends, and waits until it answers.
func (g *Gitea) serve(t testing.TB) {
	t.Helper()
	work := g.work
	cmd := exec.Command(g.bin, "--config", g.cfg, "--work-path", work, "web")
	logf, err := os.Create(filepath.Join(work, "web.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GITEA_WORK_DIR="+work, "HOME="+work)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(g.URL + "/api/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(work, "web.log"))
			t.Fatalf("gitea not ready:\n%s", data)
		}
	}
}

func (g *Gitea) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(g.bin, append([]string{"--config", g.cfg, "--work-path", g.work}, args...)...)
	cmd.Env = append(os.Environ(), "GITEA_WORK_DIR="+g.work, "HOME="+g.work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gitea %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lastLine is the last non-empty line: as root Gitea prints a warning before --raw output.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if os.Geteuid() == 0 {
		return "root"
	}
	out, _ := exec.Command("id", "-un").Output()
	return strings.TrimSpace(string(out))
}

// API calls the REST API as the admin; out (when not nil) receives the JSON answer. It returns
// the HTTP status.
func (g *Gitea) API(t testing.TB, method, path string, in, out any) int {
	t.Helper()
	return g.APIAs(t, g.Token, method, path, in, out)
}

// NewUser creates an ordinary user (not an admin: someone outside the repository, who may fork
// it) and returns an API token of theirs. Their password is Password.
func (g *Gitea) NewUser(t testing.TB, name string) string {
	t.Helper()
	g.run(t, "admin", "user", "create", "--username", name, "--password", Password,
		"--email", name+"@example.com", "--must-change-password=false")
	return strings.TrimSpace(lastLine(g.run(t, "admin", "user", "generate-access-token", "--username", name,
		"--token-name", name, "--scopes", "all", "--raw")))
}

// CloneURLAs is owner/repo's URL with user's credentials (Password), for git.
func (g *Gitea) CloneURLAs(user, owner, repo string) string {
	return strings.Replace(g.URL, "http://", "http://"+user+":"+Password+"@", 1) + "/" + owner + "/" + repo + ".git"
}

// APIAs calls the REST API with token (another user's, from NewUser).
func (g *Gitea) APIAs(t testing.TB, token, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, g.URL+"/api/v1"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "token "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// CloneURL is the repository's URL with the admin's credentials, for git.
func (g *Gitea) CloneURL(repo string) string {
	return strings.Replace(g.URL, "http://", "http://"+User+":"+Password+"@", 1) + "/" + User + "/" + repo + ".git"
}

// NewRepo creates repository name owned by User whose main branch holds the files of src, and
// waits until Gitea has processed the push (it does so asynchronously).
func (g *Gitea) NewRepo(t testing.TB, name string, src fs.FS) {
	t.Helper()
	if code := g.API(t, http.MethodPost, "/user/repos", map[string]any{"name": name, "default_branch": "main"}, nil); code != http.StatusCreated {
		t.Fatalf("create repo %s: HTTP %d", name, code)
	}
	work := t.TempDir()
	if err := os.CopyFS(work, src); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "initial")
	gitserver.Git(t, work, "push", "-q", g.CloneURL(name), "main")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var repo struct {
			Empty bool `json:"empty"`
		}
		if g.API(t, http.MethodGet, "/repos/"+User+"/"+name, nil, &repo) == http.StatusOK && !repo.Empty &&
			g.API(t, http.MethodGet, "/repos/"+User+"/"+name+"/branches/main", nil, nil) == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitea did not process the first push of %s", name)
		}
	}
}
