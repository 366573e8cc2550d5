package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imagehook/imagehook/event"
)

var _ Journal = (*Postgres)(nil)

// Postgres is the journal shared by several replicas: every one accepts webhooks into it, and the
// unique keys (event id, delivery id per hook), not process memory, decide what was seen.
type Postgres struct {
	pool *pgxpool.Pool
	// inserts feeds the group-commit writer: webhooks accepted together share one transaction,
	// one round trip and one commit, and each caller returns only once its row is committed.
	inserts chan pgInsert
	done    chan struct{}
	// gets feeds the readers the same way: Gets asked together share one query.
	gets    chan pgGet
	readers sync.WaitGroup
	// closing guards inserts and gets against a send after Close.
	closing sync.RWMutex
	closed  bool
}

// migration is one version of the schema: SQL, or a Go function for a change SQL cannot say.
type migration struct {
	sql string
	fn  func(context.Context, pgx.Tx) error
}

// migrations are the schema's versions, forward only: a release adds one at the end, never edits
// one that shipped. Each runs in its own transaction with its version recorded.
var migrations = []migration{
	// 1: the tables of the SQLite journal, in PostgreSQL's types. The event is kept as the bytes
	// of its JSON (BYTEA): payload values may hold \u0000, which JSONB refuses.
	{sql: `CREATE TABLE events (
		seq BIGSERIAL PRIMARY KEY,
		id TEXT NOT NULL UNIQUE,
		hook TEXT NOT NULL,
		repo TEXT NOT NULL,
		status TEXT NOT NULL,
		received_at BIGINT NOT NULL,
		dedup TEXT NOT NULL DEFAULT '',
		data BYTEA NOT NULL
	);
	CREATE INDEX events_status ON events(status);
	CREATE INDEX events_dedup ON events(dedup) WHERE dedup != '';
	CREATE TABLE deliveries (
		hook TEXT NOT NULL,
		id TEXT NOT NULL,
		received_at BIGINT NOT NULL,
		PRIMARY KEY (hook, id)
	);
	CREATE TABLE applied (
		target TEXT PRIMARY KEY,
		seq BIGINT NOT NULL,
		pushed_at BIGINT NOT NULL,
		event TEXT NOT NULL
	);`},
	// 2: keys become event.JoinKeys (they were joined with U+2400 in place of NUL).
	{fn: rekeyPostgres},
	// 3: promotion decisions (approvals and rejections), the one-time links used, and holds.
	{sql: decisionTablesV3},
	// 4: promotion's notices sent (waiting for approval, held), so that each is sent once.
	{sql: noticeTables},
	// 5: the events still waiting get their own index, and the index of every status goes: see
	// waitingIndexes.
	{sql: waitingIndexes},
}

// migrationLock is the advisory lock key under which replicas starting together migrate one at a
// time ("imagehook" in ASCII, as a number).
const migrationLock = 0x696d616765686f6f

// OpenPostgres connects to dsn and brings the schema up to date.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the DSN, password included: say only that it does not parse.
		return nil, errors.New("journal: the PostgreSQL DSN does not parse")
	}
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Postgres{pool: pool, inserts: make(chan pgInsert, 1024), done: make(chan struct{}),
		gets: make(chan pgGet, 1024)}
	if err := j.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	go j.writer()
	for range readers {
		j.readers.Go(j.reader)
	}
	return j, nil
}

// migrate applies the migrations not yet recorded, holding an advisory lock for the whole run.
func (j *Postgres) migrate(ctx context.Context) error {
	conn, err := j.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("journal migrate: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("journal migrate: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("journal migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("journal: the database is at schema version %d, newer than this imagehook knows (%d): upgrade imagehook", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			m := migrations[v-1]
			if m.fn != nil {
				if err := m.fn(ctx, tx); err != nil {
					return err
				}
			} else if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v)
			return err
		})
		if err != nil {
			return fmt.Errorf("journal migration %d: %w", v, err)
		}
	}
	return nil
}

// Close stops the writer and the readers (what is queued is done first) and closes the pool.
func (j *Postgres) Close() error {
	j.closing.Lock()
	if j.closed {
		j.closing.Unlock()
		return nil
	}
	j.closed = true
	close(j.inserts)
	close(j.gets)
	j.closing.Unlock()
	<-j.done
	j.readers.Wait()
	j.pool.Close()
	return nil
}

// Ping checks that the database takes writes.
func (j *Postgres) Ping(ctx context.Context) error {
	_, err := j.pool.Exec(ctx, `SELECT 1`)
	return err
}

// insertLock is the transaction-level advisory lock every journal insert takes before its rows
// draw their seq: one inserting transaction at a time, whichever replica runs it, so seq order is
// commit order (a BIGSERIAL alone hands out numbers at insert time, and two transactions may
// commit the other way round — a reader would then see seq 7 before seq 5 and miss 5).
// Its key is above 2^32, where the replicas' hashtext keys never reach.
const insertLock = 0x696d616765686f70

// maxBatch bounds the events that share one transaction.
const maxBatch = 512

// pgInsert is one Insert waiting for the group-commit writer.
type pgInsert struct {
	ev  *event.Event
	err chan error
}

// Insert records a new event; when it returns nil the event's row is committed. Inserts that
// arrive together share one transaction — one round trip, one commit — (writer).
func (j *Postgres) Insert(ctx context.Context, ev *event.Event) error {
	r := pgInsert{ev: ev, err: make(chan error, 1)}
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
	// Once queued the insert is committed or fails, whatever ctx does: a caller never answers
	// without knowing.
	if err := <-r.err; err != nil {
		if errors.Is(err, event.ErrDuplicateDelivery) {
			return err
		}
		return fmt.Errorf("journal insert %s: %w", ev.ID, err)
	}
	return nil
}

// writer commits the inserts waiting at each moment in one transaction.
func (j *Postgres) writer() {
	defer close(j.done)
	for first := range j.inserts {
		batch := []pgInsert{first}
	more:
		for len(batch) < maxBatch {
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

// commit inserts batch in one transaction and answers each caller. When the server refuses the
// transaction (it rolled back as a whole) each event is tried in a transaction of its own, so one
// event the database will not take fails alone, not its neighbours.
func (j *Postgres) commit(batch []pgInsert) {
	// The callers going away must not leave it unknown whether the rows are in: finish the write.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs := make([]*event.Event, len(batch))
	for i, r := range batch {
		evs[i] = r.ev
	}
	errs, err := j.insertBatch(ctx, evs)
	var pgErr *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pgErr) {
		for _, r := range batch {
			one, err := j.insertBatch(ctx, []*event.Event{r.ev})
			if err == nil {
				err = one[0]
			}
			r.err <- err
		}
		return
	}
	for i, r := range batch {
		if err != nil {
			r.err <- err
		} else {
			r.err <- errs[i]
		}
	}
}

// insertBatch inserts evs in one transaction (one round trip: the lock and one INSERT, committed
// by the pipeline's sync) and sets their Seq in their order. The error per event is nil or
// event.ErrDuplicateDelivery; err is the transaction's.
func (j *Postgres) insertBatch(ctx context.Context, evs []*event.Event) (errs []error, err error) {
	n := len(evs)
	ids, hooks, repos, statuses, dedups, deliveries := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	received, datas := make([]int64, 0, n), make([][]byte, 0, n)
	errs = make([]error, n)
	// A delivery id twice in one batch: the first is recorded, the second is the duplicate it
	// would be in a later transaction (the database's unique key cannot tell within one statement).
	type delivery struct{ hook, id string }
	inBatch := map[delivery]bool{}
	for i, ev := range evs {
		if ev.Delivery != "" {
			d := delivery{ev.Hook, ev.Delivery}
			if inBatch[d] {
				errs[i] = event.ErrDuplicateDelivery
				continue
			}
			inBatch[d] = true
		}
		data, err := json.Marshal(ev)
		if err != nil {
			errs[i] = err
			continue
		}
		ids, hooks, repos, statuses = append(ids, ev.ID), append(hooks, ev.Hook), append(repos, ev.Repo()), append(statuses, string(ev.Status))
		received, dedups, datas, deliveries = append(received, ev.ReceivedAt.UnixMilli()), append(dedups, dedupKey(ev)), append(datas, data), append(deliveries, ev.Delivery)
	}
	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(insertLock))
	// An event with a delivery id is inserted only if the delivery is new: the unique key
	// decides, whichever replica asks. Rows are inserted (and draw their seq) in batch order.
	b.Queue(`WITH b AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bytea[], $8::text[])
				WITH ORDINALITY AS b(id, hook, repo, status, received_at, dedup, data, delivery, ord)),
		d AS (INSERT INTO deliveries (hook, id, received_at)
			SELECT hook, delivery, received_at FROM b WHERE delivery != '' ON CONFLICT DO NOTHING RETURNING hook, id)
		INSERT INTO events (id, hook, repo, status, received_at, dedup, data)
		SELECT id, hook, repo, status, received_at, dedup, data FROM b
		WHERE delivery = '' OR EXISTS (SELECT 1 FROM d WHERE d.hook = b.hook AND d.id = b.delivery)
		ORDER BY ord RETURNING id, seq`, ids, hooks, repos, statuses, received, dedups, datas, deliveries)
	br := j.pool.SendBatch(ctx, &b)
	seqs := map[string]int64{}
	_, err = br.Exec()
	if err == nil {
		var rows pgx.Rows
		rows, err = br.Query()
		if err == nil {
			var id string
			var seq int64
			_, err = pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
				seqs[id] = seq
				return nil
			})
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	for i, ev := range evs {
		if errs[i] != nil {
			continue
		}
		seq, ok := seqs[ev.ID]
		if !ok {
			errs[i] = event.ErrDuplicateDelivery
			continue
		}
		ev.Seq = seq
	}
	return errs, nil
}

// UpdateMany stores the new state of several events in one statement (one round trip, atomic).
// An event given twice is stored as its last.
func (j *Postgres) UpdateMany(ctx context.Context, evs []*event.Event) error {
	at := map[string]int{}
	var ids, statuses []string
	var datas [][]byte
	for _, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("journal update %s: %w", ev.ID, err)
		}
		if i, ok := at[ev.ID]; ok {
			statuses[i], datas[i] = string(ev.Status), data
			continue
		}
		at[ev.ID] = len(ids)
		ids, statuses, datas = append(ids, ev.ID), append(statuses, string(ev.Status)), append(datas, data)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := j.pool.Exec(ctx, `UPDATE events SET status = u.status, data = u.data
		FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(id, status, data) WHERE events.id = u.id`, ids, statuses, datas)
	if err != nil {
		return fmt.Errorf("journal update: %w", err)
	}
	return nil
}

// Duplicate returns the id of an earlier succeeded event with the same digest and targets, or "".
func (j *Postgres) Duplicate(ctx context.Context, ev *event.Event) (string, error) {
	key := dedupKey(ev)
	if key == "" {
		return "", nil
	}
	var id string
	err := j.pool.QueryRow(ctx, `SELECT id FROM events WHERE dedup = $1 AND status = 'succeeded' AND id != $2 ORDER BY seq DESC LIMIT 1`, key, ev.ID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("journal duplicate %s: %w", ev.ID, err)
	}
	return id, nil
}

// Get returns the event with that id. Gets asked at the same moment share a query (reader):
// each is answered with the event as read after it was asked, decoded for it alone.
func (j *Postgres) Get(ctx context.Context, id string) (*event.Event, error) {
	r := pgGet{id: id, reply: make(chan pgGot, 1)}
	j.closing.RLock()
	if j.closed {
		j.closing.RUnlock()
		return nil, fmt.Errorf("journal get %s: %w", id, ErrClosed)
	}
	select {
	case j.gets <- r:
	case <-ctx.Done():
		j.closing.RUnlock()
		return nil, ctx.Err()
	}
	j.closing.RUnlock()
	var got pgGot
	select {
	case got = <-r.reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if got.err != nil {
		return nil, fmt.Errorf("journal get %s: %w", id, got.err)
	}
	if got.data == nil {
		return nil, event.ErrNotFound
	}
	var ev event.Event
	if err := json.Unmarshal(got.data, &ev); err != nil {
		return nil, fmt.Errorf("journal get %s: %w", id, err)
	}
	ev.Seq = got.seq
	return &ev, nil
}

// pgGet is one Get waiting for the reader; pgGot its answer (data nil: no such event).
type pgGet struct {
	id    string
	reply chan pgGot
}

type pgGot struct {
	seq  int64
	data []byte
	err  error
}

// readers is how many queries for Gets run at once: a caller reading one event after another
// (an updater's batch) is not kept behind a query for others.
const readers = 4

// reader answers the Gets waiting at each moment with one query.
func (j *Postgres) reader() {
	for first := range j.gets {
		batch := []pgGet{first}
	more:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-j.gets:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		ids := make([]string, len(batch))
		for i, r := range batch {
			ids[i] = r.id
		}
		found := map[string]pgGot{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rows, err := j.pool.Query(ctx, `SELECT id, seq, data FROM events WHERE id = ANY($1)`, ids)
		if err == nil {
			var id string
			var got pgGot
			_, err = pgx.ForEachRow(rows, []any{&id, &got.seq, &got.data}, func() error {
				found[id] = got // Scan gives each row its own copy of data
				return nil
			})
		}
		cancel()
		for _, r := range batch {
			if err != nil {
				r.reply <- pgGot{err: err}
			} else {
				r.reply <- found[r.id]
			}
		}
	}
}

// Pending returns the events not yet done, oldest first.
func (j *Postgres) Pending(ctx context.Context) ([]*event.Event, error) {
	return j.query(ctx, selectPending)
}

// PendingIDs returns the ids of the events not yet done, oldest first.
func (j *Postgres) PendingIDs(ctx context.Context) ([]string, error) {
	rows, err := j.pool.Query(ctx, selectPendingIDs)
	if err != nil {
		return nil, fmt.Errorf("journal pending: %w", err)
	}
	defer rows.Close()
	return scanIDs(rows)
}

// GetMany returns the journaled events of ids, oldest first, in one query.
func (j *Postgres) GetMany(ctx context.Context, ids []string) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events WHERE id = ANY($1) ORDER BY seq`, ids)
}

// Cancelled returns the cancelled events still kept, oldest first.
func (j *Postgres) Cancelled(ctx context.Context) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events WHERE status = `+cancelledStatus+` ORDER BY seq`)
}

// Recent returns the newest n events, newest first.
func (j *Postgres) Recent(ctx context.Context, n int) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events ORDER BY seq DESC LIMIT $1`, n)
}

// Prune deletes finished events (and delivery ids) received before t, and the notices no stage
// can send again.
func (j *Postgres) Prune(ctx context.Context, t time.Time) (int64, error) {
	tag, err := j.pool.Exec(ctx, `DELETE FROM events WHERE status IN (`+doneStatuses+`) AND received_at < $1`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("journal prune: %w", err)
	}
	if _, err := j.pool.Exec(ctx, `DELETE FROM deliveries WHERE received_at < $1`, t.UnixMilli()); err != nil {
		return 0, fmt.Errorf("journal prune deliveries: %w", err)
	}
	if err := (pgPromotions{pool: j.pool}).prune(ctx, t); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Current returns what was last applied to the target (zero when nothing was).
func (j *Postgres) Current(ctx context.Context, target string) (Applied, error) {
	var a Applied
	var at int64
	err := j.pool.QueryRow(ctx, `SELECT seq, pushed_at, event FROM applied WHERE target = $1`, target).Scan(&a.Seq, &at, &a.Event)
	if errors.Is(err, pgx.ErrNoRows) {
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

// SetCurrent records that the target now runs a's push; an older record never replaces a newer.
func (j *Postgres) SetCurrent(ctx context.Context, target string, a Applied) error {
	var at int64
	if !a.PushedAt.IsZero() {
		at = a.PushedAt.UnixMilli()
	}
	_, err := j.pool.Exec(ctx, `INSERT INTO applied (target, seq, pushed_at, event) VALUES ($1, $2, $3, $4)
		ON CONFLICT (target) DO UPDATE SET seq = excluded.seq, pushed_at = GREATEST(applied.pushed_at, excluded.pushed_at), event = excluded.event
		WHERE excluded.seq > applied.seq`, target, a.Seq, at, a.Event)
	if err != nil {
		return fmt.Errorf("journal applied %s: %w", a.Event, err)
	}
	return nil
}

func (j *Postgres) query(ctx context.Context, q string, args ...any) ([]*event.Event, error) {
	rows, err := j.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal query: %w", err)
	}
	defer rows.Close()
	return scanEvents(rows)
}

// PendingByHook counts the events not yet done, per hook.
func (j *Postgres) PendingByHook(ctx context.Context) (map[string]int, error) {
	// In seq order, so that the waiting index serves the count even before the table's
	// statistics know how few rows wait (a burst right after a start): unordered, the planner
	// guessed a third of the table and scanned it all.
	rows, err := j.pool.Query(ctx, `SELECT hook, COUNT(*) FROM (SELECT hook FROM events WHERE status NOT IN (`+doneStatuses+`) ORDER BY seq) w GROUP BY hook`)
	if err != nil {
		return nil, fmt.Errorf("journal count: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var hook string
		var n int64
		if err := rows.Scan(&hook, &n); err != nil {
			return nil, fmt.Errorf("journal count: %w", err)
		}
		out[hook] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal count: %w", err)
	}
	return out, nil
}
