package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imagehook/imagehook/internal/partition"
	"github.com/imagehook/imagehook/internal/pgtest"
	"github.com/imagehook/imagehook/internal/testlog"
)

// start runs a coordinator on dsn for the queues keys until the test ends. Its log is printed
// when the test fails: a takeover that did not happen is read from both replicas' claims.
func start(t testing.TB, dsn string, keys ...string) *Coordinator {
	t.Helper()
	buf := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(context.Background(), dsn, keys, log)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the replica started at %s:\n%s", started.Format("15:04:05.000"), buf)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	return c
}

// eventually polls cond until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// through returns dsn with its host and port replaced by addr's.
func through(t testing.TB, dsn, addr string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// holder returns the backend pid holding key's lock, or 0.
func holder(t testing.TB, db *pgx.Conn, key string) int {
	t.Helper()
	var pid int
	err := db.QueryRow(context.Background(), `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.classid = ((hashtext($1)::bigint >> 32) & 4294967295)::oid AND l.objid = (hashtext($1)::bigint & 4294967295)::oid`, lockName(key)).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// TestProveAsksTheDatabase: the owner proves its locks on its lock connection, a replica that does
// not own a queue cannot, and an owner whose session the server ended fails its proof at once
// (whatever its memory says), and its queues are taken over within the takeover time by exactly
// one replica, which keeps them.
func TestProveAsksTheDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	// Queue names with a NUL (direct-only queues) and with hashes of either sign.
	keys := []string{"apps", "\x00", "\x00prod", "infra"}
	a := start(t, pg.DSN, keys...)
	eventually(t, 5*time.Second, "the first replica owns every queue", func() bool { return len(a.Owned()) == len(keys) })
	b := start(t, pg.DSN, keys...)
	ctx := context.Background()
	for _, k := range keys {
		if err := a.Prove(ctx, k); err != nil {
			t.Errorf("owner's proof of %q: %v", printable(k), err)
		}
		if err := b.Prove(ctx, k); !errors.Is(err, ErrNotOwner) {
			t.Errorf("other replica's proof of %q: got %v, want ErrNotOwner", printable(k), err)
		}
	}
	db := connect(t, pg.DSN)
	pid := holder(t, db, "apps")
	var app string
	if err := db.QueryRow(ctx, `SELECT application_name FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&app); err != nil || app != applicationName {
		t.Fatalf("the lock holder's application_name: %q %v", app, err)
	}
	if _, err := db.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	err := a.Prove(ctx, "apps")
	if err == nil {
		t.Fatal("a proof on a terminated session succeeded")
	}
	if took := time.Since(started); took > proveWithin+500*time.Millisecond {
		t.Errorf("the failed proof took %v", took)
	}
	if !errors.Is(err, ErrUnproven) && !errors.Is(err, ErrNotOwner) {
		t.Errorf("proof on a terminated session: %v", err)
	}
	if a.Owns("apps") {
		t.Error("after a failed proof the replica still believes it owns the queue")
	}
	// Only the session died: the ex-owner lives and reconnects claimEvery later, and claims at once,
	// while the other replica tries every claimEvery or a little more. Whichever claims first wins
	// the queues, both rightly (neither holds them then); which one it is, is a race of a few
	// milliseconds, not a promise (with the owner cut off or dead, the other is the only one left:
	// TestPartitionedOwnerNoticesBySelf, and TestReplicasSurviveTheOwnersDeath in the root package).
	// The promise is that the queues are owned again within the takeover time by exactly one
	// replica, which keeps them.
	replicas := map[string]*Coordinator{"the ex-owner": a, "the other replica": b}
	winner := map[string]string{}
	for _, k := range keys {
		var got []string
		eventually(t, 5*time.Second, fmt.Sprintf("a replica takes %q over", printable(k)), func() bool {
			got = provers(ctx, k, replicas)
			return len(got) > 0
		})
		if len(got) != 1 {
			t.Fatalf("%q is proven by %v, want one replica", printable(k), got)
		}
		winner[k] = got[0]
		t.Logf("%s took %q over %v after the session was ended", got[0], printable(k), time.Since(started).Round(time.Millisecond))
	}
	// Long enough for the loser's next claim, whichever it is.
	time.Sleep(2 * claimEvery)
	for _, k := range keys {
		if got := provers(ctx, k, replicas); len(got) != 1 || got[0] != winner[k] {
			t.Errorf("%q is proven by %v after both have claimed again, want only %s, which took it over", printable(k), got, winner[k])
		}
	}
}

// provers lists the names of the coordinators whose proof of key succeeds.
func provers(ctx context.Context, key string, cs map[string]*Coordinator) []string {
	var out []string
	for name, c := range cs {
		if c.Prove(ctx, key) == nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestPartitionedOwnerNoticesBySelf: the network between the owner and PostgreSQL is cut (the
// server ends the session; the owner's socket stays silent). A proof fails within its deadline,
// without a push having to wait on it, and the heartbeat alone gives the queues up within seconds
// when nothing asks; meanwhile the other replica owns them.
func TestPartitionedOwnerNoticesBySelf(t *testing.T) {
	pg := pgtest.Start(t)
	for _, tc := range []struct {
		name  string
		prove bool
	}{{"a push's proof", true}, {"the heartbeat", false}} {
		t.Run(tc.name, func(t *testing.T) {
			key := "apps-" + fmt.Sprint(tc.prove)
			px := partition.Start(t, fmt.Sprintf("127.0.0.1:%d", pg.Port))
			a := start(t, through(t, pg.DSN, px.Addr), key)
			eventually(t, 5*time.Second, "the first replica owns the queue", func() bool { return a.Owns(key) })
			b := start(t, pg.DSN, key)
			px.Cut()
			cut := time.Now()
			if tc.prove {
				err := a.Prove(context.Background(), key)
				if !errors.Is(err, ErrUnproven) && !errors.Is(err, ErrNotOwner) {
					t.Fatalf("a proof through a partition: %v", err)
				}
				if took := time.Since(cut); took > proveWithin+500*time.Millisecond {
					t.Errorf("the proof through a partition failed after %v, want within %v", took, proveWithin)
				}
				if a.Owns(key) {
					t.Error("after a failed proof the replica still believes it owns the queue")
				}
			} else {
				took := eventually(t, claimEvery+proveWithin+2*time.Second, "the cut-off owner gives the queue up", func() bool { return !a.Owns(key) })
				t.Logf("the heartbeat gave the queue up %v after the cut", took.Round(time.Millisecond))
			}
			eventually(t, 5*time.Second, "the other replica owns the queue", func() bool { return b.Prove(context.Background(), key) == nil })
			px.Heal()
			// Healed, the cut-off replica reconnects and stays out of the other's queue.
			eventually(t, 10*time.Second, "the healed replica is back in session", func() bool {
				a.mu.Lock()
				defer a.mu.Unlock()
				return a.sess != nil
			})
			if a.Owns(key) || a.Prove(context.Background(), key) == nil {
				t.Error("the healed replica owns the other's queue")
			}
		})
	}
}

// BenchmarkProve measures a push's extra round trip: one proof on the lock connection (loopback).
func BenchmarkProve(b *testing.B) {
	pg := pgtest.Start(b)
	c := start(b, pg.DSN, "apps")
	eventually(b, 5*time.Second, "owns the queue", func() bool { return c.Owns("apps") })
	ctx := context.Background()
	for b.Loop() {
		if err := c.Prove(ctx, "apps"); err != nil {
			b.Fatal(err)
		}
	}
}

// takes is an Updater that records the events it is told to take.
type takes struct {
	mu  sync.Mutex
	ids map[string]int
}

func (u *takes) Resume(context.Context, string) error { return nil }
func (u *takes) Wake(string)                          {}
func (u *takes) Take(_, id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ids[id]++
}

func (u *takes) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.ids)
}

// TestSubmittedReachTheOwner: events a replica that does not own their queue journals together
// (told in shared statements) each reach the owner once, and a Submitted after Close returns.
func TestSubmittedReachTheOwner(t *testing.T) {
	pg := pgtest.Start(t)
	log := slog.New(slog.NewTextHandler(&testlog.Buffer{}, nil))
	owner, err := New(context.Background(), pg.DSN, []string{"apps"}, log)
	if err != nil {
		t.Fatal(err)
	}
	u := &takes{ids: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { owner.Run(ctx, u); close(done) }()
	t.Cleanup(func() { cancel(); <-done; owner.Close() })
	eventually(t, 5*time.Second, "the owner owns the queue", func() bool { return owner.Owns("apps") })
	other := start(t, pg.DSN, "apps")
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other.Submitted(context.Background(), "apps", fmt.Sprintf("ev-%03d", i))
		}()
	}
	wg.Wait()
	eventually(t, 10*time.Second, "every event reaches the owner", func() bool { return u.count() == n })
	u.mu.Lock()
	for id, k := range u.ids {
		if k != 1 {
			t.Errorf("event %s taken %d times", id, k)
		}
	}
	u.mu.Unlock()
	closed, err := New(context.Background(), pg.DSN, []string{"apps"}, log)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	closed.Submitted(context.Background(), "apps", "after-close")
}

// TestPack: notices become one notification per queue, in the order they came, split where a
// queue's ids would not fit in one payload.
func TestPack(t *testing.T) {
	n := func(key, id string) notice { return notice{key: key, id: id} }
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name  string
		batch []notice
		want  []string
	}{
		{"one", []notice{n("apps", "a")}, []string{"apps\na"}},
		{"queues apart", []notice{n("apps", "a"), n("web", "b"), n("apps", "c")}, []string{"apps\na\nc", "web\nb"}},
		{"split at the limit", []notice{n("apps", long), n("apps", long), n("apps", long)}, []string{"apps\n" + long + "\n" + long, "apps\n" + long}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pack(tt.batch)
			if !slices.Equal(got, tt.want) {
				t.Errorf("pack = %q, want %q", got, tt.want)
			}
			for _, p := range got {
				if len(p) > maxPayload {
					t.Errorf("payload of %d bytes, over %d", len(p), maxPayload)
				}
			}
		})
	}
}
