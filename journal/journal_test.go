package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/internal/pgtest"
)

// backends are the journal implementations: every test runs on each (PostgreSQL is skipped, with
// the reason, where it is not installed).
var backends = []struct {
	name string
	open func(t *testing.T) Journal
	// shared opens n journals on one store, as n replicas (or restarts) would.
	shared func(t *testing.T, n int) []Journal
}{
	{"sqlite", func(t *testing.T) Journal {
		j, err := OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		return j
	}, func(t *testing.T, n int) []Journal {
		path := filepath.Join(t.TempDir(), "journal.db")
		var js []Journal
		for range n {
			j, err := OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { j.Close() })
			js = append(js, j)
		}
		return js
	}},
	{"postgres", func(t *testing.T) Journal {
		pg := pgtest.Start(t)
		j, err := OpenPostgres(context.Background(), pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		return j
	}, func(t *testing.T, n int) []Journal {
		pg := pgtest.Start(t)
		var js []Journal
		for range n {
			j, err := OpenPostgres(context.Background(), pg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { j.Close() })
			js = append(js, j)
		}
		return js
	}},
}

func each(t *testing.T, test func(t *testing.T, j Journal)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.open(t)) })
	}
}

// eachShared runs test on every backend with n journals sharing one store.
func eachShared(t *testing.T, n int, test func(t *testing.T, js []Journal)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.shared(t, n)) })
	}
}

func TestInsertOrderAndDeliveries(t *testing.T) { each(t, testInsertOrderAndDeliveries) }

func TestAppliedKeepsTheLatest(t *testing.T) { each(t, testAppliedKeepsTheLatest) }

func TestAppliedRealKeys(t *testing.T) { each(t, testAppliedRealKeys) }

// realTargets are targets of every shape a config or a payload can give, odd bytes included:
// each has its own key, and every backend stores it.
var realTargets = []event.Target{
	{Repo: "apps", Path: "apps/website", Workload: "deployment/website", Namespace: "web", Container: "website"},
	{Repo: "apps", Path: "apps/website", Workload: "Deployment/Website", Namespace: "web", Container: "website", Cluster: "prod"},
	{Repo: "apps", Path: "apps/website", Workload: "deployment/website", Container: "website"},
	{Repo: "apps", Path: "charts/web", Values: &event.Values{File: "values.yaml", Repository: "image.repository", Tag: "image.tag"}},
	{Repo: "apps", Path: "charts/web", Values: &event.Values{File: "values.yaml", Image: "image"}},
	{Repo: "apps", Path: "fleet", Marker: "web"},
	{Repo: "apps", Path: "fleet", Marker: "web:tag"},
	{Cluster: "edge", Workload: "deployment/x", Namespace: "ns"},
	{Repo: "a\x00b", Path: "p"},
	{Repo: "a", Path: "\x00bp"},
	{Repo: "apps", Path: "p\u2400q", Workload: "deployment/\xff\xfe"},
	{Repo: "apps", Path: "p", Workload: "deployment/\"x\" \"y\""},
	{Repo: "apps", Path: "p", Workload: "deployment/x\" \"y"},
}

func testAppliedRealKeys(t *testing.T, j Journal) {
	ctx := context.Background()
	seen := map[string]bool{}
	for i, tg := range realTargets {
		k := tg.Key()
		if seen[k] {
			t.Fatalf("target %d shares its key %q with another", i, k)
		}
		seen[k] = true
		if err := j.SetCurrent(ctx, k, Applied{Seq: int64(i + 1), Event: fmt.Sprintf("e%d", i)}); err != nil {
			t.Fatalf("target %d (%q): %v", i, k, err)
		}
	}
	for i, tg := range realTargets {
		a, err := j.Current(ctx, tg.Key())
		if err != nil || a.Event != fmt.Sprintf("e%d", i) {
			t.Errorf("target %d: %+v %v", i, a, err)
		}
	}
}

func testInsertOrderAndDeliveries(t *testing.T, j Journal) {
	ctx := context.Background()
	now := time.Now()
	a := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: "X-GitHub-Delivery:1", ReceivedAt: now, Status: event.Queued}
	b := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: "X-GitHub-Delivery:2", ReceivedAt: now, Status: event.Queued}
	for _, ev := range []*event.Event{a, b} {
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if a.Seq == 0 || b.Seq <= a.Seq {
		t.Errorf("seq a=%d b=%d, want increasing", a.Seq, b.Seq)
	}
	replay := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: a.Delivery, ReceivedAt: now, Status: event.Queued}
	if err := j.Insert(ctx, replay); !errors.Is(err, event.ErrDuplicateDelivery) {
		t.Errorf("replayed delivery: %v, want ErrDuplicateDelivery", err)
	}
	if _, err := j.Get(ctx, replay.ID); !errors.Is(err, event.ErrNotFound) {
		t.Errorf("a duplicate was recorded: %v", err)
	}
	other := &event.Event{ID: event.NewID(now), Hook: "other-hook", Delivery: a.Delivery, ReceivedAt: now, Status: event.Queued}
	if err := j.Insert(ctx, other); err != nil {
		t.Errorf("the same delivery id on another hook: %v", err)
	}
	got, err := j.Get(ctx, b.ID)
	if err != nil || got.Seq != b.Seq {
		t.Errorf("Get: seq %v, %v", got, err)
	}
	// Delivery ids are forgotten with the events, after the retention.
	for _, ev := range []*event.Event{a, b, other} {
		ev.Status = event.Succeeded
	}
	if err := j.UpdateMany(ctx, []*event.Event{a, b, other}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Prune(ctx, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := j.Insert(ctx, replay); err != nil {
		t.Errorf("a delivery id past the retention: %v", err)
	}
}

func TestCancelledAreKept(t *testing.T) { each(t, testCancelledAreKept) }

func TestPendingByHook(t *testing.T) { each(t, testPendingByHook) }

// testPendingByHook: the journal size budget's count is of the events not yet done, per hook;
// finished events of every final status are not counted, awaiting merge is.
func testPendingByHook(t *testing.T, j Journal) {
	ctx := context.Background()
	if got, err := j.PendingByHook(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty journal: %v %v", got, err)
	}
	now := time.Now()
	for _, e := range []struct {
		hook string
		st   event.Status
	}{
		{"a", event.Queued}, {"a", event.Running}, {"a", event.AwaitingMerge}, {"a", event.Succeeded},
		{"b", event.Queued}, {"b", event.Failed}, {"b", event.Ignored}, {"b", event.Cancelled}, {"c", event.Succeeded},
	} {
		ev := &event.Event{ID: event.NewID(now), Hook: e.hook, ReceivedAt: now, Status: event.Queued}
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if e.st != event.Queued {
			ev.Status = e.st
			if err := j.UpdateMany(ctx, []*event.Event{ev}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := j.PendingByHook(ctx)
	if err != nil || len(got) != 2 || got["a"] != 3 || got["b"] != 1 {
		t.Errorf("pending by hook = %v, %v; want a:3 b:1", got, err)
	}
}

// testCancelledAreKept: the cancelled events (pull requests closed unmerged) are found, in journal
// order, until the retention prunes them; no other status is.
func testCancelledAreKept(t *testing.T, j Journal) {
	ctx := context.Background()
	now := time.Now()
	var ids []string
	for _, st := range []event.Status{event.Cancelled, event.Succeeded, event.AwaitingMerge, event.Cancelled} {
		ev := &event.Event{ID: event.NewID(now), Hook: "h", ReceivedAt: now, Status: event.Queued}
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		ev.Status = st
		if err := j.UpdateMany(ctx, []*event.Event{ev}); err != nil {
			t.Fatal(err)
		}
		if st == event.Cancelled {
			ids = append(ids, ev.ID)
		}
	}
	got, err := j.Cancelled(ctx)
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] || got[0].Seq == 0 {
		t.Fatalf("cancelled: %v %v, want %v", got, err, ids)
	}
	if _, err := j.Prune(ctx, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Cancelled(ctx); err != nil || len(got) != 0 {
		t.Errorf("after the retention: %v %v", got, err)
	}
}

func testAppliedKeepsTheLatest(t *testing.T, j Journal) {
	ctx := context.Background()
	t1, t2 := time.Unix(1000, 0).UTC(), time.Unix(2000, 0).UTC()
	if err := j.SetCurrent(ctx, "k", Applied{Seq: 5, PushedAt: t2, Event: "e5"}); err != nil {
		t.Fatal(err)
	}
	if err := j.SetCurrent(ctx, "k", Applied{Seq: 3, PushedAt: t1, Event: "e3"}); err != nil {
		t.Fatal(err)
	}
	if a, err := j.Current(ctx, "k"); err != nil || a.Event != "e5" || !a.PushedAt.Equal(t2) {
		t.Errorf("an older event replaced a newer one: %+v %v", a, err)
	}
	if a, _ := j.Current(ctx, "none"); a.Event != "" {
		t.Errorf("unknown target: %+v", a)
	}
}

// TestPostgresMigrations: replicas starting together migrate once (an advisory lock), a second
// start finds the schema current, and a database newer than the binary is refused.
func TestPostgresMigrations(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			j, err := OpenPostgres(ctx, pg.DSN)
			if err == nil {
				j.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent start: %v", err)
		}
	}
	j, err := OpenPostgres(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := j.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(migrations) {
		t.Fatalf("%d migrations recorded, want %d (%v)", n, len(migrations), err)
	}
	if _, err := j.pool.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := OpenPostgres(ctx, pg.DSN); err == nil || !strings.Contains(err.Error(), "newer than this imagehook knows") {
		t.Errorf("a newer schema: %v", err)
	}
	if _, err := OpenPostgres(ctx, "postgres://u:s3cret@[bad"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a bad DSN: %v", err)
	}
}

// TestHostileValuesAreStored: a payload's NUL or odd bytes must never make the journal refuse an
// event (that would be a 503 for ever for that registry).
func TestHostileValuesAreStored(t *testing.T) {
	each(t, func(t *testing.T, j Journal) {
		ctx := context.Background()
		now := time.Now()
		ev := &event.Event{ID: event.NewID(now), Hook: "h", ReceivedAt: now, Status: event.Queued,
			Push:    event.Push{Image: "r/x:1", Digest: "sha256:" + strings.Repeat("a", 64), Pusher: "a\x00b\u2028\xff"},
			Targets: []event.Target{{Repo: "apps", Workload: "deployment/x\x00y"}}}
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		got, err := j.Get(ctx, ev.ID)
		if err != nil || !strings.Contains(got.Push.Pusher, "a\x00b") {
			t.Fatalf("%+v %v", got, err)
		}
		ev.Status = event.Succeeded
		if err := j.UpdateMany(ctx, []*event.Event{ev}); err != nil {
			t.Fatal(err)
		}
		again := *ev
		again.ID = event.NewID(now)
		if id, err := j.Duplicate(ctx, &again); err != nil || id != ev.ID {
			t.Errorf("duplicate: %q %v", id, err)
		}
	})
}

// TestLegacyKeysAreRekeyed: what an earlier release recorded as applied, under its NUL-joined keys
// (SQLite) or U+2400-joined ones (PostgreSQL), still protects the target after the upgrade, and
// duplicate detection still finds the events it journaled.
func TestLegacyKeysAreRekeyed(t *testing.T) {
	tg := realTargets[3]
	parts := []string{tg.Repo, tg.Path, strings.ToLower(tg.Workload), tg.Namespace, tg.Container, tg.Cluster, tg.Marker,
		tg.Values.File, tg.Values.Image, tg.Values.Registry, tg.Values.Repository, tg.Values.Tag, tg.Values.Digest}
	now := time.Now()
	ev := &event.Event{ID: event.NewID(now), Hook: "h", ReceivedAt: now, Status: event.Succeeded,
		Push: event.Push{Image: "r/x:1", Digest: "sha256:" + strings.Repeat("a", 64)}, Targets: []event.Target{tg}}
	legacyDedup := func(sep string) string {
		targets, _ := json.Marshal(ev.Targets)
		return ev.Hook + sep + ev.Push.Ref() + sep + string(targets)
	}
	check := func(t *testing.T, j Journal) {
		ctx := context.Background()
		if a, err := j.Current(ctx, tg.Key()); err != nil || a.Event != "old" || a.Seq != 7 {
			t.Errorf("legacy applied record after the upgrade: %+v %v", a, err)
		}
		again := *ev
		again.ID = event.NewID(now)
		if id, err := j.Duplicate(ctx, &again); err != nil || id != ev.ID {
			t.Errorf("legacy dedup key after the upgrade: %q %v", id, err)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		j, err := OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(ev)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`PRAGMA user_version = 0`, nil},
			{`INSERT INTO applied (target, seq, pushed_at, event) VALUES (?, 7, 0, 'old')`, []any{strings.Join(parts, "\x00")}},
			{`INSERT INTO events (id, hook, repo, status, received_at, dedup, data) VALUES (?, 'h', 'apps', 'succeeded', 0, ?, ?)`, []any{ev.ID, legacyDedup("\x00"), data}},
		} {
			if _, err := j.db.Exec(q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		j.Close()
		j, err = OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		check(t, j)
		var n int
		if err := j.db.QueryRow(`SELECT count(*) FROM applied WHERE instr(target, char(0)) > 0`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d legacy keys left (%v)", n, err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.Start(t)
		ctx := context.Background()
		j, err := OpenPostgres(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(ev)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM schema_migrations WHERE version >= 2`, nil},
			{`INSERT INTO applied (target, seq, pushed_at, event) VALUES ($1, 7, 0, 'old')`, []any{strings.Join(parts, "\u2400")}},
			{`INSERT INTO events (id, hook, repo, status, received_at, dedup, data) VALUES ($1, 'h', 'apps', 'succeeded', 0, $2, $3)`, []any{ev.ID, legacyDedup("\u2400"), data}},
		} {
			if _, err := j.pool.Exec(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		j.Close()
		j, err = OpenPostgres(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		check(t, j)
	})
}

// together is the group commit of a backend, run on exactly these events as one batch: what
// concurrent inserts that meet in one transaction get, without relying on them meeting.
type together interface {
	insertTogether(evs []*event.Event) []error
}

func (j *SQLite) insertTogether(evs []*event.Event) []error {
	batch := make([]insertReq, len(evs))
	for i, ev := range evs {
		batch[i] = insertReq{ev: ev, err: make(chan error, 1)}
	}
	j.commit(batch)
	out := make([]error, len(evs))
	for i, r := range batch {
		out[i] = <-r.err
	}
	return out
}

func (j *Postgres) insertTogether(evs []*event.Event) []error {
	batch := make([]pgInsert, len(evs))
	for i, ev := range evs {
		batch[i] = pgInsert{ev: ev, err: make(chan error, 1)}
	}
	j.commit(batch)
	out := make([]error, len(evs))
	for i, r := range batch {
		out[i] = <-r.err
	}
	return out
}

func TestOneTransactionManyEvents(t *testing.T) { each(t, testOneTransactionManyEvents) }

// testOneTransactionManyEvents: events committed in one transaction get their own answers — a
// delivery id seen before, or twice in the batch, is a duplicate (the first of the two is
// recorded); an event the database refuses (an id already journaled) fails alone; every other
// event is committed, with seq in the batch's order.
func testOneTransactionManyEvents(t *testing.T, j Journal) {
	ctx := context.Background()
	now := time.Now()
	mk := func(delivery string) *event.Event {
		return &event.Event{ID: event.NewID(now), Hook: "h", Delivery: delivery, ReceivedAt: now, Status: event.Queued}
	}
	seen := mk("d:seen")
	if err := j.Insert(ctx, seen); err != nil {
		t.Fatal(err)
	}
	clash := mk("d:clash")
	clash.ID = seen.ID
	evs := []*event.Event{mk("d:1"), mk("d:twice"), mk("d:seen"), mk(""), clash, mk("d:twice"), mk("d:2")}
	want := []error{nil, nil, event.ErrDuplicateDelivery, nil, errors.New("refused"), event.ErrDuplicateDelivery, nil}
	got := j.(together).insertTogether(evs)
	var last int64
	for i, err := range got {
		switch {
		case want[i] == nil && err != nil:
			t.Errorf("event %d (delivery %q): %v, want it committed", i, evs[i].Delivery, err)
		case errors.Is(want[i], event.ErrDuplicateDelivery) && !errors.Is(err, event.ErrDuplicateDelivery):
			t.Errorf("event %d (delivery %q): %v, want ErrDuplicateDelivery", i, evs[i].Delivery, err)
		case want[i] != nil && !errors.Is(want[i], event.ErrDuplicateDelivery) && (err == nil || errors.Is(err, event.ErrDuplicateDelivery)):
			t.Errorf("event %d (an id already journaled): %v, want the database's refusal", i, err)
		}
		if want[i] != nil {
			continue
		}
		if evs[i].Seq <= last {
			t.Errorf("event %d: seq %d after %d, want increasing in batch order", i, evs[i].Seq, last)
		}
		last = evs[i].Seq
		if g, err := j.Get(ctx, evs[i].ID); err != nil || g.Seq != evs[i].Seq {
			t.Errorf("event %d not journaled as answered: %+v %v", i, g, err)
		}
	}
	if g, err := j.Get(ctx, seen.ID); err != nil || g.Delivery != "d:seen" {
		t.Errorf("the refused event replaced the one journaled: %+v %v", g, err)
	}
	// The refused event's delivery id was not recorded: it can come again.
	if err := j.Insert(ctx, mk("d:clash")); err != nil {
		t.Errorf("the refused event's delivery id, again: %v", err)
	}
}

func TestSeqIsCommitOrder(t *testing.T) { eachShared(t, 3, testSeqIsCommitOrder) }

// testSeqIsCommitOrder: three journals on one store (replicas) take concurrent inserts, every
// delivery id twice on two of them. Exactly one of each pair is recorded, and seq order is
// commit order: a reader never sees an event appear below one it saw before (it would have
// resumed past it).
func testSeqIsCommitOrder(t *testing.T, js []Journal) {
	ctx := context.Background()
	const clients, per = 24, 25
	type result struct {
		ev  *event.Event
		err error
	}
	results := make(chan result, 2*clients*per)
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		// Each look must find, beyond what the last one saw, only seqs above all it saw.
		var seen map[int64]bool
		var top int64
		looks := 0
		for {
			select {
			case <-stop:
				if looks < 2 {
					watched <- fmt.Errorf("the reader looked %d times only", looks)
					return
				}
				watched <- nil
				return
			default:
			}
			evs, err := js[0].Pending(ctx)
			if err != nil {
				watched <- err
				return
			}
			looks++
			now := map[int64]bool{}
			newTop := top
			for _, ev := range evs {
				now[ev.Seq] = true
				if seen != nil && !seen[ev.Seq] && ev.Seq < top {
					watched <- fmt.Errorf("seq %d appeared after seq %d was seen: seq order is not commit order", ev.Seq, top)
					return
				}
				newTop = max(newTop, ev.Seq)
			}
			for s := range seen {
				if !now[s] {
					watched <- fmt.Errorf("seq %d vanished", s)
					return
				}
			}
			seen, top = now, newTop
		}
	}()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				for k := range 2 {
					now := time.Now()
					ev := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: fmt.Sprintf("d:%d:%d", c, i), ReceivedAt: now, Status: event.Queued}
					results <- result{ev, js[(c+i+k)%len(js)].Insert(ctx, ev)}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(results)
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	recorded := map[string]int{}
	seqs := map[int64]bool{}
	for r := range results {
		switch {
		case errors.Is(r.err, event.ErrDuplicateDelivery):
		case r.err != nil:
			t.Fatalf("insert %s: %v", r.ev.Delivery, r.err)
		default:
			recorded[r.ev.Delivery]++
			if seqs[r.ev.Seq] {
				t.Fatalf("seq %d given twice", r.ev.Seq)
			}
			seqs[r.ev.Seq] = true
		}
	}
	if len(recorded) != clients*per {
		t.Errorf("%d deliveries recorded, want %d", len(recorded), clients*per)
	}
	for d, n := range recorded {
		if n != 1 {
			t.Errorf("delivery %s recorded %d times", d, n)
		}
	}
	pending, err := js[1].Pending(ctx)
	if err != nil || len(pending) != clients*per {
		t.Fatalf("%d events journaled, want %d (%v)", len(pending), clients*per, err)
	}
}

func TestGetsAtOnce(t *testing.T) { each(t, testGetsAtOnce) }

// testGetsAtOnce: Gets asked at the same moment (which may share one query) each get the event
// as journaled, their own copy of it, or ErrNotFound for an id never journaled.
func testGetsAtOnce(t *testing.T, j Journal) {
	ctx := context.Background()
	evs := insertWorkloads(t, j, 5)
	const askers = 64
	errs := make(chan error, askers)
	var wg sync.WaitGroup
	for a := range askers {
		wg.Go(func() {
			if a%8 == 7 {
				if _, err := j.Get(ctx, "never-journaled"); !errors.Is(err, event.ErrNotFound) {
					errs <- fmt.Errorf("an id never journaled: %v, want ErrNotFound", err)
				}
				return
			}
			want := evs[a%len(evs)]
			got, err := j.Get(ctx, want.ID)
			if err != nil {
				errs <- err
				return
			}
			if got.Seq != want.Seq || got.Targets[0].Workload != want.Targets[0].Workload {
				errs <- fmt.Errorf("Get %s: seq %d workload %q, want %d %q", want.ID, got.Seq, got.Targets[0].Workload, want.Seq, want.Targets[0].Workload)
				return
			}
			// Each caller's copy is its own: changing it changes no one else's.
			got.Targets[0].Workload = fmt.Sprint("changed by ", a)
			got.Status = event.Failed
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, want := range evs {
		if got, err := j.Get(ctx, want.ID); err != nil || got.Status != event.Queued || got.Targets[0].Workload != want.Targets[0].Workload {
			t.Errorf("after the callers changed their copies: %+v %v", got, err)
		}
	}
}

func TestUpdateManyAtOnce(t *testing.T) { each(t, testUpdateManyAtOnce) }

// testUpdateManyAtOnce: UpdateMany stores every event's new state, an event given twice as its
// last, and leaves the events it was not given alone.
func testUpdateManyAtOnce(t *testing.T, j Journal) {
	ctx := context.Background()
	now := time.Now()
	var evs []*event.Event
	for range 40 {
		ev := &event.Event{ID: event.NewID(now), Hook: "h", ReceivedAt: now, Status: event.Queued}
		if err := j.Insert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	var update []*event.Event
	for i, ev := range evs[:30] {
		c := *ev
		c.Status = event.Succeeded
		c.Push.Pusher = fmt.Sprint("pusher ", i)
		update = append(update, &c)
	}
	last := *update[3]
	last.Status, last.Push.Pusher = event.Failed, "the last word"
	update = append(update, &last)
	if err := j.UpdateMany(ctx, update); err != nil {
		t.Fatal(err)
	}
	if err := j.UpdateMany(ctx, nil); err != nil {
		t.Errorf("nothing to update: %v", err)
	}
	for i, ev := range evs {
		got, err := j.Get(ctx, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, pusher := event.Succeeded, fmt.Sprint("pusher ", i)
		switch {
		case i == 3:
			want, pusher = event.Failed, "the last word"
		case i >= 30:
			want, pusher = event.Queued, ""
		}
		if got.Status != want || got.Push.Pusher != pusher {
			t.Errorf("event %d: %s %q, want %s %q", i, got.Status, got.Push.Pusher, want, pusher)
		}
	}
}

// BenchmarkInsertReplicas measures inserts as the load test's replicas make them: 48 callers
// spread over three journals on one PostgreSQL (loopback), each insert with a delivery id.
// go test -run '^$' -bench InsertReplicas -blockprofile block.out ./journal shows where callers
// wait.
func BenchmarkInsertReplicas(b *testing.B) {
	pg := pgtest.Start(b)
	var js []*Postgres
	for range 3 {
		j, err := OpenPostgres(context.Background(), pg.DSN)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { j.Close() })
		js = append(js, j)
	}
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(max(1, 48/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			now := time.Now()
			ev := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: fmt.Sprint("d:", i), ReceivedAt: now, Status: event.Queued,
				Targets: []event.Target{{Repo: "apps", Path: "apps/website", Workload: "deployment/website"}}}
			if err := js[i%3].Insert(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestGetManyAndPendingIDs(t *testing.T) { each(t, testGetManyAndPendingIDs) }

// testGetManyAndPendingIDs: GetMany returns the journaled events of the ids asked, each once, in
// journal order whatever the order asked, and skips ids never journaled; PendingIDs lists the
// events not done, in journal order.
func testGetManyAndPendingIDs(t *testing.T, j Journal) {
	ctx := context.Background()
	evs := insertWorkloads(t, j, 4)
	got, err := j.GetMany(ctx, []string{evs[3].ID, "never-journaled", evs[0].ID, evs[3].ID, `'); DROP TABLE events; --`})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != evs[0].ID || got[1].ID != evs[3].ID || got[0].Seq != evs[0].Seq || got[1].Targets[0].Workload != "deployment/w3" {
		t.Errorf("GetMany = %v, want events 0 and 3 in journal order", got)
	}
	if got, err := j.GetMany(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("GetMany(nil) = %v, %v; want none", got, err)
	}
	evs[1].Status = event.Succeeded
	if err := j.UpdateMany(ctx, evs[1:2]); err != nil {
		t.Fatal(err)
	}
	ids, err := j.PendingIDs(ctx)
	if want := []string{evs[0].ID, evs[2].ID, evs[3].ID}; err != nil || !slices.Equal(ids, want) {
		t.Errorf("PendingIDs = %v, %v; want %v", ids, err, want)
	}
}

// insertWorkloads journals n queued events, event i with delivery "d<i>" and workload
// deployment/w<i>, and returns them as journaled.
func insertWorkloads(t *testing.T, j Journal, n int) []*event.Event {
	t.Helper()
	now := time.Now()
	var evs []*event.Event
	for i := range n {
		ev := &event.Event{ID: event.NewID(now), Hook: "h", Delivery: fmt.Sprint("d", i), ReceivedAt: now, Status: event.Queued,
			Targets: []event.Target{{Repo: "apps", Workload: fmt.Sprint("deployment/w", i)}}}
		if err := j.Insert(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}
