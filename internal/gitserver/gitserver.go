// Package gitserver runs a real git smart-HTTP server for tests: git's own http-backend behind
// net/http/cgi, with basic auth, serving bare repositories made with the git binary.
package gitserver

import (
	"crypto/subtle"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Server is a smart-HTTP git server over a directory of bare repositories.
type Server struct {
	Root     string
	URL      string
	User     string
	Password string
	// Down makes every request fail with 503 while set, to simulate an outage.
	Down atomic.Bool
	// FailStatus, when set, answers every request with that status (a server error, say).
	FailStatus atomic.Int32
	// Requests counts the requests served (whatever their answer).
	Requests atomic.Int64
	// Stall holds every request while set (a server that hangs): it is served once Stall is
	// cleared, or dropped when its caller gives up.
	Stall atomic.Bool
	srv   *httptest.Server
}

// New starts a server that requires user/password; it stops when the test ends.
func New(t testing.TB, user, password string) *Server {
	t.Helper()
	backend, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	s := &Server{Root: t.TempDir(), User: user, Password: password}
	h := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(backend)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		for s.Stall.Load() {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		if code := s.FailStatus.Load(); code != 0 {
			http.Error(w, "internal failure", int(code))
			return
		}
		if s.Down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.User)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Header.Set("Remote-User", u)
		h.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Git runs the git binary in dir and returns its trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Command(dir, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// NewRepo creates a bare repository name.git whose main branch holds the files of src, and returns
// its clone URL without credentials.
func (s *Server) NewRepo(t testing.TB, name string, src fs.FS) string {
	t.Helper()
	bare := filepath.Join(s.Root, name+".git")
	Git(t, s.Root, "init", "-q", "--bare", "-b", "main", bare)
	Git(t, bare, "config", "http.receivepack", "true")
	work := t.TempDir()
	if err := os.CopyFS(work, src); err != nil {
		t.Fatal(err)
	}
	Git(t, work, "init", "-q", "-b", "main")
	Git(t, work, "add", "-A")
	Git(t, work, "commit", "-q", "-m", "initial")
	Git(t, work, "push", "-q", bare, "main")
	return s.URL + "/" + name + ".git"
}

// Bare returns the path of repository name's bare directory, for inspecting it with the git binary.
func (s *Server) Bare(name string) string { return filepath.Join(s.Root, name+".git") }

// Command returns an exec.Cmd for the git binary in dir with a test identity, for callers that
// handle failures themselves.
func Command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_TERMINAL_PROMPT=0")
	return cmd
}
