package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/internal/gitserver"
	"github.com/imagehook/imagehook/internal/partition"
	"github.com/imagehook/imagehook/internal/pgtest"
)

// replicas starts n imagehook processes sharing one PostgreSQL journal and one git server.
func replicas(t *testing.T, n int) ([]*daemon, *gitserver.Server, *pgtest.Server) {
	pg := pgtest.Start(t)
	git := gitserver.New(t, "bot", "pw")
	url := git.NewRepo(t, "apps", examples.Manifests())
	bin := buildBinary(t)
	var ds []*daemon
	for range n {
		ds = append(ds, startReplica(t, bin, pg.DSN, url))
	}
	return ds, git, pg
}

// owner finds the replica working the apps queue, from its log.
func owner(t *testing.T, ds []*daemon) *daemon {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, d := range ds {
			if d.cmd.ProcessState == nil && strings.Contains(d.logText(), `now works the queue" component=replica queue=apps`) {
				return d
			}
		}
	}
	t.Fatalf("no replica works the apps queue; a log:\n%s", ds[0].logText())
	return nil
}

// burst posts from four clients, spread over the live replicas, until stop; it returns the ids
// answered 202.
func burst(ds []*daemon, stop chan struct{}) func() []string {
	var mu sync.Mutex
	var accepted []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := ds[(w+i)%len(ds)]
				hook, repo := "web", "imagehook-demo/website"
				if i%2 == 1 {
					hook, repo = "api", "acme/api"
				}
				body := fmt.Sprintf(`{"push_data":{"tag":"8.%d.%d"},"repository":{"repo_name":%q}}`, w, i, repo)
				resp, err := http.Post("http://"+d.addr+"/hooks/"+hook+"?token=tok", "application/json", strings.NewReader(body))
				if err != nil {
					time.Sleep(5 * time.Millisecond) // that replica is gone, or the database is
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					var m map[string]any
					_ = json.Unmarshal(data, &m)
					mu.Lock()
					accepted = append(accepted, m["id"].(string))
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return func() []string { wg.Wait(); return accepted }
}

// checkApplied waits until every accepted event succeeded, or was ignored as superseded by a
// later journaled event that succeeded (asking a live replica), and checks that no event is in two
// commits' trailers.
func checkApplied(t *testing.T, live *daemon, git *gitserver.Server, accepted []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for _, id := range accepted {
		for {
			ev := live.event(id)
			if ev["status"] == "succeeded" {
				break
			}
			if ev["status"] == "ignored" {
				checkSuperseded(t, live, id, ev)
				break
			}
			if ev["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("event %s: %v", id, ev)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	took := time.Since(start)
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}}.Open(git.Bare("apps"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Event]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s is in %d commits' trailers", id, n)
		}
	}
	// An event no commit carries must say why: its image was already in place, or a later push for
	// its target won (and that one may itself have landed before the owner died).
	for _, id := range accepted {
		if steps := fmt.Sprint(live.event(id)["steps"]); seen[id] == 0 && !strings.Contains(steps, "unchanged") && !strings.Contains(steps, "superseded") {
			t.Errorf("event %s succeeded but no commit carries it: %s", id, steps)
		}
	}
	return took
}

// checkSuperseded checks that an ignored event was superseded (its git step's typed reason) by an
// event journaled later that succeeded.
func checkSuperseded(t *testing.T, live *daemon, id string, ev map[string]any) {
	t.Helper()
	git := gitStep(ev)
	_, by, ok := strings.Cut(fmt.Sprint(git["detail"]), "superseded: event ")
	if git["reason"] != "superseded" || !ok {
		t.Errorf("event %s ignored, not as superseded: %v", id, ev["steps"])
		return
	}
	by, _, _ = strings.Cut(by, ",")
	// The superseding event's push is recorded before it finishes (apply, notify): wait for it.
	w := live.event(by)
	for deadline := time.Now().Add(30 * time.Second); w["status"] == "running" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		w = live.event(by)
	}
	if w["status"] != "succeeded" || w["seq"].(float64) <= ev["seq"].(float64) {
		t.Errorf("event %s ignored as superseded by %s, which is %v (seq %v)", id, by, w["status"], w["seq"])
	}
}

// TestReplicasSurviveTheOwnersDeath: three replicas on one PostgreSQL journal; four clients post a
// burst spread over them; the replica working the repository is SIGKILLed mid-burst. Every event
// answered 202 ends succeeded (or superseded by a later one that did), none is in two commits, and the
// time from the kill to the burst being done is logged.
func TestReplicasSurviveTheOwnersDeath(t *testing.T) {
	ds, git, _ := replicas(t, 3)
	own := owner(t, ds)
	// ?wait= answers whichever replica accepted the webhook: here one that does not work the queue.
	other := ds[0]
	if other == own {
		other = ds[1]
	}
	resp, err := http.Post("http://"+other.addr+"/hooks/web?token=tok&wait=20s", "application/json", strings.NewReader(`{"push_data":{"tag":"8.0.0"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ev map[string]any
	_ = json.Unmarshal(data, &ev)
	if resp.StatusCode != http.StatusOK || ev["status"] != "succeeded" {
		t.Fatalf("?wait= on a replica that does not own the queue: %d %s", resp.StatusCode, data)
	}
	stop := make(chan struct{})
	wait := burst(ds, stop)
	time.Sleep(500 * time.Millisecond)
	if err := own.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = own.cmd.Wait()
	killed := time.Now()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	accepted := wait()
	var live []*daemon
	for _, d := range ds {
		if d != own {
			live = append(live, d)
		}
	}
	if len(accepted) < 20 {
		t.Fatalf("only %d events accepted", len(accepted))
	}
	// A generous deadline, not a speed claim: the time to recover is logged (and measured by make
	// bench's failover figure), since a loaded CI machine is slower than any promise.
	checkApplied(t, live[0], git, accepted, 60*time.Second-time.Since(killed))
	next := owner(t, live)
	t.Logf("%d events accepted by three replicas; owner killed; all applied %v after the kill, now worked by %s",
		len(accepted), time.Since(killed).Round(time.Millisecond), next.addr)
}

// TestReplicasRideOutADatabaseRestart: PostgreSQL stops mid-burst: the replicas answer 503 with
// Retry-After and fail /readyz meanwhile, never 2xx without a write; when it is back they recover
// by themselves and nothing that got a 2xx is lost.
func TestReplicasRideOutADatabaseRestart(t *testing.T) {
	ds, git, pg := replicas(t, 2)
	stop := make(chan struct{})
	wait := burst(ds, stop)
	time.Sleep(300 * time.Millisecond)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+ds[0].addr+"/hooks/web?token=tok", "application/json", strings.NewReader(`{"push_data":{"tag":"9.9.9"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("with the database down: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, err := http.Get("http://" + ds[1].addr + "/readyz"); err != nil || resp.StatusCode == http.StatusOK {
		t.Errorf("readyz with the database down: %v %v", resp.StatusCode, err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	accepted := wait()
	checkApplied(t, ds[0], git, accepted, 30*time.Second)
	t.Logf("%d events accepted around a database restart; all applied", len(accepted))
}

// gate is one replica's way to the git server, which can hold its pushes (receive-pack) until
// released: a slow git server for that replica alone.
type gate struct {
	URL  string
	hold atomic.Bool
	// held receives a release channel for each push held.
	held chan chan struct{}
	// pushed receives once for each push that reached the git server and was answered.
	pushed chan struct{}
}

// drain forgets the pushes answered so far.
func (g *gate) drain() {
	for {
		select {
		case <-g.pushed:
		default:
			return
		}
	}
}

func newGate(t *testing.T, target string) *gate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{held: make(chan chan struct{}, 16), pushed: make(chan struct{}, 64)}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		push := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack")
		if push && g.hold.Load() {
			release := make(chan struct{})
			g.held <- release
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
		if push {
			g.pushed <- struct{}{}
		}
	}))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// fenced is one replica of the fence tests, with its own way to PostgreSQL (which can be cut)
// and to the git server (which can hold its pushes).
type fenced struct {
	*daemon
	db  *partition.Proxy
	git *gate
}

// fencedReplicas starts n replicas on one PostgreSQL and one git server, each through its own
// proxies.
func fencedReplicas(t *testing.T, n int) ([]*fenced, *gitserver.Server, *pgtest.Server) {
	pg := pgtest.Start(t)
	git := gitserver.New(t, "bot", "pw")
	git.NewRepo(t, "apps", examples.Manifests())
	bin := buildBinary(t)
	var rs []*fenced
	for range n {
		db := partition.Start(t, fmt.Sprintf("127.0.0.1:%d", pg.Port))
		g := newGate(t, git.URL)
		dsn := strings.Replace(pg.DSN, fmt.Sprintf("127.0.0.1:%d", pg.Port), db.Addr, 1)
		d := startReplica(t, bin, dsn, g.URL+"/apps.git")
		rs = append(rs, &fenced{daemon: d, db: db, git: g})
	}
	return rs, git, pg
}

// startReplica runs one replica with the two hooks on the apps repository.
func startReplica(t *testing.T, bin, dsn, repoURL string) *daemon {
	return startReplicaWith(t, bin, dsn, repoURL, `hooks:
  - id: web
    token: tok
    source: dockerhub
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
  - id: api
    token: tok
    source: dockerhub
    targets: [{repo: apps, path: apps/api, workload: deployment/api, namespace: web, container: api}]
`)
}

// startReplicaWith starts a replica whose config ends with more (its hooks, and whatever else).
func startReplicaWith(t *testing.T, bin, dsn, repoURL, more string) *daemon {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "imagehook.yaml")
	yml := fmt.Sprintf(`listen: %q
dataDir: %s
journal: {driver: postgres, dsn: %q}
repos: [{name: apps, url: %s, auth: {username: bot, password: pw}}]
%s`, addr, filepath.Join(dir, "data"), dsn, repoURL, more)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := daemonFor(t, bin, cfg, addr)
	d.start()
	return d
}

// lockOwner finds the replica whose session holds the apps queue's lock, asking PostgreSQL (the
// holder's client port is one of a replica's proxy's).
func lockOwner(t *testing.T, db *pgx.Conn, rs []*fenced, among ...*fenced) *fenced {
	t.Helper()
	if len(among) == 0 {
		among = rs
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var port int
		err := db.QueryRow(context.Background(), `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			AND l.classid = ((hashtext('imagehook:apps')::bigint >> 32) & 4294967295)::oid
			AND l.objid = (hashtext('imagehook:apps')::bigint & 4294967295)::oid`).Scan(&port)
		if err != nil {
			continue
		}
		for _, r := range among {
			if r.db.Carries(port) {
				return r
			}
		}
	}
	t.Fatal("no replica holds the apps queue's lock")
	return nil
}

// posted is the events the fence tests had answered 2xx, by id: the tag each pushed.
type posted map[string]string

// post sends one push to a replica and records it. A 503 (the replica's journal connections are
// being replaced, after a partition healed) is sent again, as a registry that retries would;
// anything else but 202 fails the test.
func (p posted) post(t *testing.T, d *daemon, hook, tag string) {
	t.Helper()
	repo := map[string]string{"web": "imagehook-demo/website", "api": "acme/api"}[hook]
	c := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := c.Post("http://"+d.addr+"/hooks/"+hook+"?token=tok", "application/json",
			strings.NewReader(fmt.Sprintf(`{"push_data":{"tag":%q},"repository":{"repo_name":%q}}`, tag, repo)))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			continue
		}
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		id, _ := m["id"].(string)
		if resp.StatusCode != http.StatusAccepted || id == "" {
			t.Fatalf("post %s %s: %d %s", hook, tag, resp.StatusCode, data)
		}
		p[id] = tag
		return
	}
}

// wait receives from ch within d, or fails the test.
func wait[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
	var zero T
	return zero
}

// checkFenced waits until every posted event is settled, asking a live replica, and checks the
// fence's promises: each ends succeeded, or ignored as superseded by a succeeded event; none is
// in two commits' trailers; one no commit carries says why; and the tip holds, for each target,
// the push of the event journaled last.
func checkFenced(t *testing.T, live *daemon, git *gitserver.Server, db *pgx.Conn, events posted) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	status := map[string]map[string]any{}
	for id := range events {
		for {
			ev := live.event(id)
			if s, _ := ev["status"].(string); s == "succeeded" || s == "ignored" || s == "failed" {
				status[id] = ev
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s not settled: %v", id, ev)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for id, ev := range status {
		switch ev["status"] {
		case "succeeded":
		case "ignored":
			checkSuperseded(t, live, id, ev)
		default:
			t.Errorf("event %s: %v", id, ev)
		}
	}
	entries, err := audit.Reader{Committer: gitops.Signature{Name: "imagehook", Email: "imagehook@localhost"}}.Open(git.Bare("apps"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Event]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s is in %d commits' trailers", id, n)
		}
	}
	for id, ev := range status {
		if steps := fmt.Sprint(ev["steps"]); ev["status"] == "succeeded" && seen[id] == 0 && !strings.Contains(steps, "unchanged") && !strings.Contains(steps, "superseded") {
			t.Errorf("event %s succeeded but no commit carries it: %s", id, steps)
		}
	}
	for hook, file := range map[string]string{"web": "apps/website/deployment.yaml", "api": "apps/api/deployment.yaml"} {
		var last string
		if err := db.QueryRow(context.Background(), `SELECT id FROM events WHERE hook = $1 ORDER BY seq DESC LIMIT 1`, hook).Scan(&last); err != nil {
			t.Fatal(err)
		}
		tag, ok := events[last]
		if !ok {
			t.Fatalf("the last %s event journaled, %s, is not one the test posted", hook, last)
		}
		tip := gitserver.Git(t, git.Bare("apps"), "show", "main:"+file)
		if !strings.Contains(tip, ":"+tag+"'") && !strings.Contains(tip, ":"+tag+" ") && !strings.Contains(tip, ":"+tag+"\n") {
			t.Errorf("the tip's %s does not hold %s (event %s, journaled last):\n%s", file, tag, last, tip)
		}
	}
}

// partitionRound cuts the owner of the apps queue from PostgreSQL while its push is held at the
// git server, lets another replica take the queue over, and lands the two pushes in the order
// given: the stale owner's first (the new owner's retry must leave out what it carried) or the
// new owner's first (the stale owner's retry must be fenced); then it heals the partition and
// checks the fence's promises over every event so far.
func partitionRound(t *testing.T, rs []*fenced, git *gitserver.Server, db *pgx.Conn, events posted, round int, staleFirst bool) {
	t.Helper()
	for _, r := range rs {
		r.git.drain()
	}
	own := lockOwner(t, db, rs)
	var others []*fenced
	for _, r := range rs {
		if r != own {
			others = append(others, r)
		}
	}
	own.git.hold.Store(true)
	for _, r := range others {
		r.git.hold.Store(staleFirst)
	}
	// Events for the owner's batch, accepted elsewhere; its push is held.
	events.post(t, others[0].daemon, "web", fmt.Sprintf("70.%d.1", round))
	events.post(t, others[1].daemon, "api", fmt.Sprintf("70.%d.2", round))
	release := wait(t, own.git.held, 15*time.Second, "the owner's push reaches the git server")
	own.git.hold.Store(false)
	own.db.Cut()
	// Newer events, while the owner's push is in flight and its session cut.
	for i := 3; i <= 8; i++ {
		events.post(t, others[i%2].daemon, []string{"web", "api"}[i%2], fmt.Sprintf("70.%d.%d", round, i))
	}
	next := lockOwner(t, db, rs, others...)
	fencedBefore := strings.Count(own.logText(), "git step fenced")
	if staleFirst {
		held := wait(t, next.git.held, 15*time.Second, "the new owner's push reaches the git server")
		for _, r := range others {
			r.git.hold.Store(false)
		}
		close(release)
		wait(t, own.git.pushed, 15*time.Second, "the stale owner's push lands")
		close(held)
	} else {
		wait(t, next.git.pushed, 15*time.Second, "the new owner's push lands")
		close(release)
		wait(t, own.git.pushed, 15*time.Second, "the stale owner's push is answered")
		for deadline := time.Now().Add(10 * time.Second); strings.Count(own.logText(), "git step fenced") == fencedBefore; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the stale owner's retry was not fenced; its log:\n%s", round, own.logText())
			}
		}
	}
	own.db.Heal()
	checkFenced(t, next.daemon, git, db, events)
}

// TestReplicasFenceAPartitionedOwner: the owner of the repository is cut off from PostgreSQL (the
// server ends its session and frees the lock; the owner hears nothing) while its push is slow at
// the git server, and another replica takes the queue over and pushes newer events. Whichever push
// lands first — the stale owner's (the new owner's conflict retry leaves out what it carried) or
// the new owner's (the stale owner's retry fails its proof of ownership) — no event is in two
// commits, the tip is the event journaled last, and every 2xx event ends succeeded or ignored as
// superseded by a succeeded one.
func TestReplicasFenceAPartitionedOwner(t *testing.T) {
	rs, git, pg := fencedReplicas(t, 3)
	db, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	events := posted{}
	for round, staleFirst := range []bool{true, false} {
		start := time.Now()
		partitionRound(t, rs, git, db, events, round, staleFirst)
		t.Logf("round %d (stale owner's push first: %v): %v", round, staleFirst, time.Since(start).Round(time.Millisecond))
	}
}

// TestReplicasFencePartitionRounds repeats the partition ten times, alternating which push lands
// first, over the same three replicas (each cut-off owner heals and rejoins).
func TestReplicasFencePartitionRounds(t *testing.T) {
	rs, git, pg := fencedReplicas(t, 3)
	db, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	events := posted{}
	start := time.Now()
	for round := range 10 {
		partitionRound(t, rs, git, db, events, round, round%2 == 0)
	}
	t.Logf("10 rounds, %d events: %v", len(events), time.Since(start).Round(time.Millisecond))
}

// TestReplicasFenceAStoppedOwner: the owner is stopped (SIGSTOP) while its push is slow at the git
// server, past the lock session's idle timeout: PostgreSQL ends its session and frees the lock,
// another replica takes the queue over and pushes newer events; then the owner continues
// (SIGCONT), its push is rejected, and its retry fails its proof of ownership. Same promises as
// the partition's.
func TestReplicasFenceAStoppedOwner(t *testing.T) {
	rs, git, pg := fencedReplicas(t, 3)
	db, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	events := posted{}
	own := lockOwner(t, db, rs)
	var others []*fenced
	for _, r := range rs {
		if r != own {
			others = append(others, r)
		}
	}
	own.git.hold.Store(true)
	events.post(t, others[0].daemon, "web", "71.0.1")
	events.post(t, others[1].daemon, "api", "71.0.2")
	release := wait(t, own.git.held, 15*time.Second, "the owner's push reaches the git server")
	own.git.hold.Store(false)
	if err := own.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for i := 3; i <= 8; i++ {
		events.post(t, others[i%2].daemon, []string{"web", "api"}[i%2], fmt.Sprintf("71.0.%d", i))
	}
	next := lockOwner(t, db, rs, others...)
	t.Logf("the queue was taken over %v after the owner stopped", time.Since(stopped).Round(time.Millisecond))
	wait(t, next.git.pushed, 15*time.Second, "the new owner's push lands")
	if err := own.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	close(release)
	wait(t, own.git.pushed, 15*time.Second, "the stale owner's push is answered")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(own.logText(), "git step fenced"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stopped owner's retry was not fenced; its log:\n%s", own.logText())
		}
	}
	checkFenced(t, next.daemon, git, db, events)
}
