// Package journal is imagehook's durable record of events: an event is in it before the webhook
// is answered, and stays there with each step's outcome. Journal is the contract every backend
// satisfies; SQLite (in the data directory) is the default one.
package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver: no cgo

	"github.com/imagehook/imagehook/event"
)

// Journal is what the flow and the HTTP side need of a journal backend.
type Journal interface {
	// Insert records a new event and sets its Seq; when it returns nil the event is durable. A
	// delivery id already recorded for the hook gives event.ErrDuplicateDelivery.
	Insert(ctx context.Context, ev *event.Event) error
	// Get returns the event with that id, or event.ErrNotFound.
	Get(ctx context.Context, id string) (*event.Event, error)
	// GetMany returns the events of those ids that are journaled, in journal order, in one
	// query: an updater's batch is read at once, not event by event.
	GetMany(ctx context.Context, ids []string) ([]*event.Event, error)
	// Recent returns the newest n events, newest first.
	Recent(ctx context.Context, n int) ([]*event.Event, error)
	// Pending returns the events not yet done, in journal order.
	Pending(ctx context.Context) ([]*event.Event, error)
	// PendingIDs returns the ids of the events not yet done, in journal order: a sweep for
	// events missed reads only those it does not already hold.
	PendingIDs(ctx context.Context) ([]string, error)
	// Cancelled returns the cancelled events still kept (their pull requests were closed without
	// merging, and are followed until the retention prunes them: a reopen and merge completes
	// them), in journal order.
	Cancelled(ctx context.Context) ([]*event.Event, error)
	// UpdateMany stores the new state of several events at once.
	UpdateMany(ctx context.Context, evs []*event.Event) error
	// Duplicate returns the id of an earlier succeeded event with the same digest and targets.
	Duplicate(ctx context.Context, ev *event.Event) (string, error)
	// Current and SetCurrent keep, per target key, the push last applied.
	Current(ctx context.Context, target string) (Applied, error)
	SetCurrent(ctx context.Context, target string, a Applied) error
	// Prune deletes finished events (and delivery ids) received before t, and the promotion
	// notices no stage can send again (see pruneNotices).
	Prune(ctx context.Context, t time.Time) (int64, error)
	// Promotions returns the store of promotion's approvals, holds and notices.
	Promotions() Promotions
	// Ping checks that the journal is writable.
	Ping(ctx context.Context) error
	// PendingByHook counts the events not yet done, per hook (the journal size budget).
	PendingByHook(ctx context.Context) (map[string]int, error)
	Close() error
}

var _ Journal = (*SQLite)(nil)

// ErrClosed is an insert after the journal was closed (the service is stopping).
var ErrClosed = errors.New("journal closed")

// SQLite is the default journal: one file in the data directory.
type SQLite struct {
	db *sql.DB
	// inserts feeds the group-commit writer: concurrent webhooks share one transaction and one
	// fsync, and each caller returns only once its row is committed.
	inserts chan insertReq
	done    chan struct{}
	// closing guards inserts against a send after Close.
	closing sync.RWMutex
	closed  bool
}

type insertReq struct {
	ev  *event.Event
	err chan error
	// dup is set by the writer when the event repeats a delivery id: it was not recorded.
	dup bool
}

// OpenSQLite opens (or creates) the SQLite journal at path. WAL with synchronous=FULL makes every
// committed insert survive a crash of the process or the machine.
func OpenSQLite(path string) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// One writer at a time is what SQLite does anyway; one connection also keeps the pragmas.
	db.SetMaxOpenConns(1)
	const schema = `CREATE TABLE IF NOT EXISTS events (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id TEXT NOT NULL UNIQUE,
		hook TEXT NOT NULL,
		repo TEXT NOT NULL,
		status TEXT NOT NULL,
		received_at INTEGER NOT NULL,
		dedup TEXT NOT NULL DEFAULT '',
		data BLOB NOT NULL
	);
	CREATE INDEX IF NOT EXISTS events_dedup ON events(dedup) WHERE dedup != '';
	CREATE TABLE IF NOT EXISTS deliveries (
		hook TEXT NOT NULL,
		id TEXT NOT NULL,
		received_at INTEGER NOT NULL,
		PRIMARY KEY (hook, id)
	);
	CREATE TABLE IF NOT EXISTS applied (
		target TEXT PRIMARY KEY,
		seq INTEGER NOT NULL,
		pushed_at INTEGER NOT NULL,
		event TEXT NOT NULL
	);`
	if _, err := db.Exec(schema + decisionTables + waitingIndexes); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal schema: %w", err)
	}
	if err := rekeySQLite(db); err != nil {
		db.Close()
		return nil, err
	}
	j := &SQLite{db: db, inserts: make(chan insertReq, 1024), done: make(chan struct{})}
	go j.writer()
	return j, nil
}

// Close stops the writer and closes the database.
func (j *SQLite) Close() error {
	j.closing.Lock()
	if j.closed {
		j.closing.Unlock()
		return nil
	}
	j.closed = true
	close(j.inserts)
	j.closing.Unlock()
	<-j.done
	return j.db.Close()
}

// writer commits the inserts waiting at each moment in one transaction.
func (j *SQLite) writer() {
	defer close(j.done)
	for first := range j.inserts {
		batch := []insertReq{first}
	more:
		for len(batch) < 512 {
			select {
			case r, ok := <-j.inserts:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		j.commit(batch)
	}
}

// commit inserts batch in one transaction and answers each caller. When the transaction fails
// each event is tried in a transaction of its own, so one event the database will not take fails
// alone, not its neighbours.
func (j *SQLite) commit(batch []insertReq) {
	err := j.insertBatch(batch)
	if err != nil && len(batch) > 1 {
		for i := range batch {
			j.commit(batch[i : i+1])
		}
		return
	}
	for _, r := range batch {
		switch {
		case err != nil:
			r.err <- err
		case r.dup:
			r.err <- event.ErrDuplicateDelivery
		default:
			r.err <- nil
		}
	}
}

func (j *SQLite) insertBatch(batch []insertReq) error {
	tx, err := j.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(`INSERT INTO events (id, hook, repo, status, received_at, dedup, data) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range batch {
		r := &batch[i]
		r.dup = false
		if r.ev.Delivery != "" {
			// The unique key, not process memory, says "seen": it holds across restarts and replicas.
			res, err := tx.Exec(`INSERT OR IGNORE INTO deliveries (hook, id, received_at) VALUES (?, ?, ?)`,
				r.ev.Hook, r.ev.Delivery, r.ev.ReceivedAt.UnixMilli())
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				r.dup = true
				continue
			}
		}
		data, err := json.Marshal(r.ev)
		if err != nil {
			return err
		}
		res, err := stmt.Exec(r.ev.ID, r.ev.Hook, r.ev.Repo(), string(r.ev.Status), r.ev.ReceivedAt.UnixMilli(), dedupKey(r.ev), data)
		if err != nil {
			return err
		}
		if r.ev.Seq, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Ping checks that the journal is writable.
func (j *SQLite) Ping(ctx context.Context) error {
	_, err := j.db.ExecContext(ctx, "PRAGMA user_version = 1")
	return err
}

// Insert records a new event; when it returns nil the event is committed to disk.
func (j *SQLite) Insert(ctx context.Context, ev *event.Event) error {
	r := insertReq{ev: ev, err: make(chan error, 1)}
	j.closing.RLock()
	if j.closed {
		j.closing.RUnlock()
		return fmt.Errorf("journal insert %s: %w", ev.ID, ErrClosed)
	}
	select {
	case j.inserts <- r:
	case <-ctx.Done():
		j.closing.RUnlock()
		return ctx.Err()
	}
	j.closing.RUnlock()
	// Once queued the insert is committed or fails as a whole; wait for it whatever ctx does, so a
	// caller never answers without knowing.
	if err := <-r.err; err != nil {
		return fmt.Errorf("journal insert %s: %w", ev.ID, err)
	}
	return nil
}

// Update stores the event's new state.
func (j *SQLite) Update(ctx context.Context, ev *event.Event) error {
	return j.UpdateMany(ctx, []*event.Event{ev})
}

// UpdateMany stores the new state of several events in one transaction.
func (j *SQLite) UpdateMany(ctx context.Context, evs []*event.Event) error {
	// Encoded before the transaction: it holds the one connection, which accepts (the insert
	// writer) and every read wait for, and a batch of a thousand events takes milliseconds to
	// encode.
	datas := make([][]byte, len(evs))
	for i, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("journal update %s: %w", ev.ID, err)
		}
		datas[i] = data
	}
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal update: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE events SET status = ?, data = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("journal update: %w", err)
	}
	defer stmt.Close()
	for i, ev := range evs {
		if _, err := stmt.ExecContext(ctx, string(ev.Status), datas[i], ev.ID); err != nil {
			return fmt.Errorf("journal update %s: %w", ev.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal update: %w", err)
	}
	return nil
}

// Duplicate returns the id of an earlier event that delivered the same digest for the same
// targets and succeeded, or "".
func (j *SQLite) Duplicate(ctx context.Context, ev *event.Event) (string, error) {
	key := dedupKey(ev)
	if key == "" {
		return "", nil
	}
	var id string
	err := j.db.QueryRowContext(ctx, `SELECT id FROM events WHERE dedup = ? AND status = 'succeeded' AND id != ? ORDER BY seq DESC LIMIT 1`,
		key, ev.ID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("journal duplicate %s: %w", ev.ID, err)
	}
	return id, nil
}

// Get returns the event with that id.
func (j *SQLite) Get(ctx context.Context, id string) (*event.Event, error) {
	var data []byte
	var seq int64
	err := j.db.QueryRowContext(ctx, `SELECT seq, data FROM events WHERE id = ?`, id).Scan(&seq, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, event.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("journal get %s: %w", id, err)
	}
	var ev event.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("journal get %s: %w", id, err)
	}
	ev.Seq = seq
	return &ev, nil
}

// Pending returns the events not yet done (event.Status.Done), oldest first: after a restart they
// are resumed.
func (j *SQLite) Pending(ctx context.Context) ([]*event.Event, error) {
	return j.query(ctx, selectPending)
}

// PendingIDs returns the ids of the events not yet done, oldest first.
func (j *SQLite) PendingIDs(ctx context.Context) ([]string, error) {
	rows, err := j.db.QueryContext(ctx, selectPendingIDs)
	if err != nil {
		return nil, fmt.Errorf("journal pending: %w", err)
	}
	defer rows.Close()
	return scanIDs(rows)
}

// GetMany returns the journaled events of ids, oldest first. The ids travel as one JSON array
// (json_each reads it): one statement whatever their number.
func (j *SQLite) GetMany(ctx context.Context, ids []string) ([]*event.Event, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("journal get: %w", err)
	}
	return j.query(ctx, `SELECT seq, data FROM events WHERE id IN (SELECT value FROM json_each(?)) ORDER BY seq`, string(list))
}

// Cancelled returns the cancelled events still kept, oldest first.
func (j *SQLite) Cancelled(ctx context.Context) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events WHERE status = `+cancelledStatus+` ORDER BY seq`)
}

// waitingIndexes index the few events a journal reads by status — those still waiting (the
// budget counts them each second, a start reads them) and the cancelled — and drop the index of
// every status: a journal keeps a retention's worth of finished events, and reads through an
// index of all statuses, or a scan, cost what is kept (38 ms on PostgreSQL, 65 ms on SQLite at
// 100,000, BenchmarkPendingByHook), where these cost what waits. Each status change also wrote
// that index; finishing an event now leaves the waiting index. The queries name the statuses with
// the same literals (doneStatuses, cancelledStatus): a partial index serves only a query whose
// condition matches its own. Both backends run the same text (PostgreSQL as migration 5: were the
// final statuses ever to change, a new migration rebuilds the index).
var waitingIndexes = `
	CREATE INDEX IF NOT EXISTS events_waiting ON events(seq) WHERE status NOT IN (` + doneStatuses + `);
	CREATE INDEX IF NOT EXISTS events_cancelled ON events(seq) WHERE status = ` + cancelledStatus + `;
	DROP INDEX IF EXISTS events_status;`

// cancelledStatus is event.Cancelled for SQL.
var cancelledStatus = sqlStatus(event.Cancelled)

// sqlStatus is a status as an SQL literal (statuses are fixed words, no quote in them).
func sqlStatus(s event.Status) string { return "'" + string(s) + "'" }

// selectPending and selectPendingIDs read the events not yet done, and their ids, in journal
// order: the same SQL on both backends.
var (
	selectPending    = `SELECT seq, data FROM events WHERE status NOT IN (` + doneStatuses + `) ORDER BY seq`
	selectPendingIDs = `SELECT id FROM events WHERE status NOT IN (` + doneStatuses + `) ORDER BY seq`
)

// doneStatuses lists, for SQL, the statuses event.Status.Done holds final.
var doneStatuses = func() string {
	var out []string
	for _, s := range []event.Status{event.Succeeded, event.Failed, event.Ignored, event.Cancelled} {
		if !s.Done() {
			panic("journal: " + string(s) + " is not a final status")
		}
		out = append(out, sqlStatus(s))
	}
	return strings.Join(out, ", ")
}()

// Prune deletes finished events received before t and returns how many; delivery ids and
// notices go with them.
func (j *SQLite) Prune(ctx context.Context, t time.Time) (int64, error) {
	res, err := j.db.ExecContext(ctx, `DELETE FROM events WHERE status IN (`+doneStatuses+`) AND received_at < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("journal prune: %w", err)
	}
	// Delivery ids are remembered as long as events are: a replay within the retention is refused.
	if _, err := j.db.ExecContext(ctx, `DELETE FROM deliveries WHERE received_at < ?`, t.UnixMilli()); err != nil {
		return 0, fmt.Errorf("journal prune deliveries: %w", err)
	}
	if err := (sqlitePromotions{db: j.db}).prune(ctx, t); err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Applied is the push last applied to a target.
type Applied struct {
	Seq      int64
	PushedAt time.Time
	Event    string
}

// Current returns what was last applied to the target with that key (zero when nothing was).
func (j *SQLite) Current(ctx context.Context, target string) (Applied, error) {
	var a Applied
	var at int64
	err := j.db.QueryRowContext(ctx, `SELECT seq, pushed_at, event FROM applied WHERE target = ?`, target).Scan(&a.Seq, &at, &a.Event)
	if errors.Is(err, sql.ErrNoRows) {
		return Applied{}, nil
	}
	if err != nil {
		return Applied{}, fmt.Errorf("journal applied: %w", err)
	}
	if at != 0 {
		a.PushedAt = time.UnixMilli(at).UTC()
	}
	return a, nil
}

// SetCurrent records that the target now runs the push of a; an older record never replaces a
// newer one (journal order decides).
func (j *SQLite) SetCurrent(ctx context.Context, target string, a Applied) error {
	var at int64
	if !a.PushedAt.IsZero() {
		at = a.PushedAt.UnixMilli()
	}
	_, err := j.db.ExecContext(ctx, `INSERT INTO applied (target, seq, pushed_at, event) VALUES (?, ?, ?, ?)
		ON CONFLICT(target) DO UPDATE SET seq = excluded.seq, pushed_at = max(applied.pushed_at, excluded.pushed_at), event = excluded.event
		WHERE excluded.seq > applied.seq`, target, a.Seq, at, a.Event)
	if err != nil {
		return fmt.Errorf("journal applied %s: %w", a.Event, err)
	}
	return nil
}

// Recent returns the newest n events, newest first.
func (j *SQLite) Recent(ctx context.Context, n int) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events ORDER BY seq DESC LIMIT ?`, n)
}

func (j *SQLite) query(ctx context.Context, q string, args ...any) ([]*event.Event, error) {
	rows, err := j.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal query: %w", err)
	}
	defer rows.Close()
	return scanEvents(rows)
}

// scanIDs reads rows of one text column (ids, or any other names).
func scanIDs(rs rows) ([]string, error) {
	var ids []string
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, fmt.Errorf("journal scan: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("journal scan: %w", err)
	}
	return ids, nil
}

// rows is what both backends' result sets offer.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanEvents decodes (seq, data) rows: the events as stored, with their place in the journal.
func scanEvents(rs rows) ([]*event.Event, error) {
	var out []*event.Event
	for rs.Next() {
		var data []byte
		var seq int64
		if err := rs.Scan(&seq, &data); err != nil {
			return nil, fmt.Errorf("journal query: %w", err)
		}
		var ev event.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return nil, fmt.Errorf("journal query: %w", err)
		}
		ev.Seq = seq
		out = append(out, &ev)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("journal query: %w", err)
	}
	return out, nil
}

// PendingByHook counts the events not yet done, per hook.
func (j *SQLite) PendingByHook(ctx context.Context) (map[string]int, error) {
	return countByHook(ctx, j.db, `SELECT hook, COUNT(*) FROM events WHERE status NOT IN (`+doneStatuses+`) GROUP BY hook`)
}

// countByHook reads (hook, count) rows.
func countByHook(ctx context.Context, db *sql.DB, q string) (map[string]int, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("journal count: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var hook string
		var n int
		if err := rows.Scan(&hook, &n); err != nil {
			return nil, fmt.Errorf("journal count: %w", err)
		}
		out[hook] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal count: %w", err)
	}
	return out, nil
}
