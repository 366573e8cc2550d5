package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/manifesttest"
	"github.com/imagehook/imagehook/internal/pgtest"
	"github.com/imagehook/imagehook/internal/smtptest"
)

// TestPromotionSurvivesKillNine kills imagehook with SIGKILL while staging's soak runs: after the
// restart, with no new request, staging is promoted once — one commit, one promotion event.
func TestPromotionSurvivesKillNine(t *testing.T) {
	git := gitserver.New(t, "bot", "pw")
	url := git.NewRepo(t, "apps", manifesttest.Stages("dev", "staging"))
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "imagehook.yaml")
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	yml := fmt.Sprintf(`listen: %q
dataDir: %s
repos: [{name: apps, url: %s, auth: {username: bot, password: pw}}]
hooks: [{id: web, token: tok, source: dockerhub, pipeline: website}]
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, gates: {soak: 4s}, targets: %s}
`, addr, filepath.Join(dir, "data"), url, target("dev"), target("staging"))
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := daemonFor(t, buildBinary(t), cfg, addr)
	d.start()
	resp, err := http.Post("http://"+addr+"/hooks/web?wait=30s&token=tok", "application/json",
		strings.NewReader(`{"push_data":{"tag":"3.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&ev)
	resp.Body.Close()
	if ev["status"] != "succeeded" {
		t.Fatalf("push: %v", ev)
	}
	staging := func() string {
		return gitserver.Git(t, git.Bare("apps"), "show", "main:envs/staging/website/deployment.yaml")
	}
	soaking := !strings.Contains(staging(), "3.0.0")
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Wait()
	if !soaking {
		t.Log("staging was promoted before the kill (a slow machine): the restart must still not promote it twice")
	}

	d.start()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(staging(), "website:3.0.0"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("staging not promoted after the restart:\n%s\n%s", staging(), d.logText())
		}
	}
	// The promotion is done once the pipeline says staging runs its candidate; then count.
	waitStagingCurrent(t, addr)
	if n := gitserver.Git(t, git.Bare("apps"), "rev-list", "--count", "main", "--", "envs/staging"); n != "2" {
		t.Errorf("%s commits touch staging, want 2 (the first and one promotion)", n)
	}
	log := gitserver.Git(t, git.Bare("apps"), "log", "--format=%B", "main", "--", "envs/staging")
	if c := strings.Count(log, "Imagehook-Promoted-From: website/dev "); c != 1 {
		t.Errorf("%d promotions in staging's history, want 1:\n%s", c, log)
	}
}

// TestReplicasPromoteOnce: three replicas on one PostgreSQL journal; the repository's owner is
// killed while staging's soak runs; the replica that takes over promotes it, once.
func TestReplicasPromoteOnce(t *testing.T) {
	pg := pgtest.Start(t)
	git := gitserver.New(t, "bot", "pw")
	url := git.NewRepo(t, "apps", manifesttest.Stages("dev", "staging"))
	bin := buildBinary(t)
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	more := fmt.Sprintf(`hooks: [{id: web, token: tok, source: dockerhub, pipeline: website}]
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, gates: {soak: 4s}, targets: %s}
`, target("dev"), target("staging"))
	var ds []*daemon
	for range 3 {
		ds = append(ds, startReplicaWith(t, bin, pg.DSN, url, more))
	}
	own := owner(t, ds)
	var other *daemon
	for _, d := range ds {
		if d != own {
			other = d
			break
		}
	}
	resp, err := http.Post("http://"+other.addr+"/hooks/web?wait=30s&token=tok", "application/json",
		strings.NewReader(`{"push_data":{"tag":"3.1.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&ev)
	resp.Body.Close()
	if ev["status"] != "succeeded" {
		t.Fatalf("push: %v", ev)
	}
	if err := own.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = own.cmd.Wait()
	staging := func() string {
		return gitserver.Git(t, git.Bare("apps"), "show", "main:envs/staging/website/deployment.yaml")
	}
	for deadline := time.Now().Add(90 * time.Second); !strings.Contains(staging(), "website:3.1.0"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("staging not promoted after the owner's death:\n%s", other.logText())
		}
	}
	// Every live replica agrees staging runs its candidate; then count.
	for _, d := range ds {
		if d != own {
			waitStagingCurrent(t, d.addr)
		}
	}
	log := gitserver.Git(t, git.Bare("apps"), "log", "--format=%B", "main", "--", "envs/staging")
	if c := strings.Count(log, "Imagehook-Promoted-From: website/dev "); c != 1 {
		t.Errorf("%d promotions in staging's history, want 1:\n%s", c, log)
	}
}

// waitStagingCurrent polls the website pipeline at addr until its staging stage runs its
// candidate.
func waitStagingCurrent(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/pipelines/website")
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Stages []struct{ Name, State string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if len(v.Stages) == 2 && v.Stages[1].State == "current" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("staging never current on %s: %+v", addr, v)
		}
	}
}

// TestPromotionNoticeOnceAcrossRestarts: staging waits for alice's approval and the request is
// mailed to a real SMTP server; imagehook is killed with SIGKILL and started again: the new process
// finds the request recorded in the journal and mails nothing — one message in all.
func TestPromotionNoticeOnceAcrossRestarts(t *testing.T) {
	_, cert := smtptest.TestCA(t)
	smtpSrv := smtptest.Start(t, smtptest.Options{}, cert)
	git := gitserver.New(t, "bot", "pw")
	url := git.NewRepo(t, "apps", manifesttest.Stages("dev", "staging"))
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "imagehook.yaml")
	target := func(env string) string {
		return fmt.Sprintf("[{repo: apps, path: envs/%s/website, workload: deployment/website, container: website}]", env)
	}
	yml := fmt.Sprintf(`listen: %q
dataDir: %s
repos: [{name: apps, url: %s, auth: {username: bot, password: pw}}]
mail: {host: 127.0.0.1, port: %d, tls: none, username: %s, password: %s, from: %s, to: [ops@example.com], language: en}
approvers: [{name: alice, token: alice-approver-token-1}]
hooks: [{id: web, token: tok, source: dockerhub, pipeline: website}]
pipelines:
  - name: website
    stages:
      - {name: dev, targets: %s}
      - {name: staging, after: dev, gates: {approval: {approvers: [alice], count: 1}}, targets: %s}
`, addr, filepath.Join(dir, "data"), url, smtpSrv.Port, smtptest.User, smtptest.Password, smtptest.User, target("dev"), target("staging"))
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := daemonFor(t, buildBinary(t), cfg, addr)
	d.start()
	resp, err := http.Post("http://"+addr+"/hooks/web?wait=30s&token=tok", "application/json",
		strings.NewReader(`{"push_data":{"tag":"3.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	requests := func() int {
		msgs, _ := smtpSrv.Messages()
		n := 0
		for _, m := range msgs {
			if strings.Contains(string(m), "staging waits for approval") {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); requests() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no request for approval mailed:\n%s", d.logText())
		}
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Wait()

	d.start()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(d.logText(), "promotion notice already sent"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted process never met the recorded request:\n%s", d.logText())
		}
	}
	if n := requests(); n != 1 {
		t.Errorf("%d requests for approval mailed, want 1 (the restart must not send it again)", n)
	}
}
