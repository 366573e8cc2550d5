// Package pgtest runs a throwaway PostgreSQL cluster for tests: Debian's postgresql package's
// initdb and pg_ctl, run as the postgres user (PostgreSQL refuses root) in a temporary directory,
// on loopback, removed afterwards.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Server is a running cluster.
type Server struct {
	// DSN reaches its postgres database as the postgres superuser (trust auth on loopback).
	DSN  string
	Port int
	dir  string
	bin  string
	as   []string
}

// bindir finds the newest installed PostgreSQL's programs, or "".
func bindir() string {
	if d := os.Getenv("IMAGEHOOK_PG_BIN"); d != "" {
		return d
	}
	vs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(vs)
	if len(vs) == 0 {
		return ""
	}
	return filepath.Dir(vs[len(vs)-1])
}

// Start creates and starts a cluster for the test; it skips when PostgreSQL is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := bindir()
	if bin == "" {
		t.Skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
	}
	dir, err := os.MkdirTemp("", "imagehook-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL will not run as root: the cluster belongs to the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no postgres user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.as = []string{"runuser", "-u", "postgres", "--"}
	}
	t.Cleanup(func() { s.stop(); os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if out, err := s.cmd("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Server) cmd(prog string, args ...string) *exec.Cmd {
	full := append(append([]string(nil), s.as...), append([]string{filepath.Join(s.bin, prog)}, args...)...)
	return exec.Command(full[0], full[1:]...)
}

// Restart starts the cluster (again, after Stop).
func (s *Server) Restart() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", s.Port, s.dir)
	if out, err := s.cmd("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-l", filepath.Join(s.dir, "log"), "-w", "-o", opts, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return nil
}

// Stop kills the cluster at once, as a crash would.
func (s *Server) Stop() error {
	out, err := s.cmd("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

func (s *Server) stop() { _ = s.Stop() }
