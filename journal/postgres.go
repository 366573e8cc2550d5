package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imagehook/imagehook/event"
)

var _ Journal = (*Postgres)(nil)

// Postgres is the journal shared by several replicas: every one accepts webhooks into it, and the
// unique keys (event id, delivery id per hook), not process memory, decide what was seen.
type Postgres struct {
	pool *pgxpool.Pool
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
	j := &Postgres{pool: pool}
	if err := j.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
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

// Close closes the pool.
func (j *Postgres) Close() error {
	j.pool.Close()
	return nil
}

// Ping checks that the database takes writes.
func (j *Postgres) Ping(ctx context.Context) error {
	_, err := j.pool.Exec(ctx, `SELECT 1`)
	return err
}

// Insert records a new event in one transaction; when it returns nil the event is committed.
func (j *Postgres) Insert(ctx context.Context, ev *event.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("journal insert %s: %w", ev.ID, err)
	}
	// The caller going away must not leave it unknown whether the row is in: finish the write.
	ctx = context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// One statement, one round trip, atomic on its own: with a delivery id, the event is inserted
	// only if the delivery is new (the unique key decides, whichever replica asks).
	args := []any{ev.ID, ev.Hook, ev.Repo(), string(ev.Status), ev.ReceivedAt.UnixMilli(), dedupKey(ev), data}
	q := `INSERT INTO events (id, hook, repo, status, received_at, dedup, data) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`
	if ev.Delivery != "" {
		q = `WITH d AS (INSERT INTO deliveries (hook, id, received_at) VALUES ($2, $8, $5) ON CONFLICT DO NOTHING RETURNING 1)
			INSERT INTO events (id, hook, repo, status, received_at, dedup, data)
			SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM d) RETURNING seq`
		args = append(args, ev.Delivery)
	}
	err = j.pool.QueryRow(ctx, q, args...).Scan(&ev.Seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return event.ErrDuplicateDelivery
	}
	if err != nil {
		return fmt.Errorf("journal insert %s: %w", ev.ID, err)
	}
	return nil
}

// UpdateMany stores the new state of several events in one transaction.
func (j *Postgres) UpdateMany(ctx context.Context, evs []*event.Event) error {
	err := pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		for _, ev := range evs {
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE events SET status = $1, data = $2 WHERE id = $3`, string(ev.Status), data, ev.ID); err != nil {
				return err
			}
		}
		return nil
	})
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

// Get returns the event with that id.
func (j *Postgres) Get(ctx context.Context, id string) (*event.Event, error) {
	evs, err := j.query(ctx, `SELECT seq, data FROM events WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, event.ErrNotFound
	}
	return evs[0], nil
}

// Pending returns the events not yet done, oldest first.
func (j *Postgres) Pending(ctx context.Context) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events WHERE status NOT IN (`+doneStatuses+`) ORDER BY seq`)
}

// Cancelled returns the cancelled events still kept, oldest first.
func (j *Postgres) Cancelled(ctx context.Context) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events WHERE status = $1 ORDER BY seq`, string(event.Cancelled))
}

// Recent returns the newest n events, newest first.
func (j *Postgres) Recent(ctx context.Context, n int) ([]*event.Event, error) {
	return j.query(ctx, `SELECT seq, data FROM events ORDER BY seq DESC LIMIT $1`, n)
}

// Prune deletes finished events (and delivery ids) received before t.
func (j *Postgres) Prune(ctx context.Context, t time.Time) (int64, error) {
	tag, err := j.pool.Exec(ctx, `DELETE FROM events WHERE status IN (`+doneStatuses+`) AND received_at < $1`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("journal prune: %w", err)
	}
	if _, err := j.pool.Exec(ctx, `DELETE FROM deliveries WHERE received_at < $1`, t.UnixMilli()); err != nil {
		return 0, fmt.Errorf("journal prune deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}

// LastApplied returns what was last applied to the target (zero when nothing was).
func (j *Postgres) LastApplied(ctx context.Context, target string) (Applied, error) {
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

// SetApplied records that the target now runs a's push; an older record never replaces a newer.
func (j *Postgres) SetApplied(ctx context.Context, target string, a Applied) error {
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
	rows, err := j.pool.Query(ctx, `SELECT hook, COUNT(*) FROM events WHERE status NOT IN (`+doneStatuses+`) GROUP BY hook`)
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
