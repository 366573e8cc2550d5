package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Decision is one approver's approval or rejection of a digest for a pipeline's stage. A later
// decision of the same approver for the same digest replaces the earlier one.
type Decision struct {
	Pipeline string
	Stage    string
	Digest   string
	Approver string
	Approve  bool // false: rejected
	Comment  string
	At       time.Time
	// Link is the id of the signed one-time link the decision came through ("" for the API).
	Link string
}

// ErrLinkUsed is returned when a one-time link has already been used: nothing is recorded.
var ErrLinkUsed = errors.New("approval link already used")

// Promotions is what promotion needs of a journal backend: approvals and holds, durable and
// shared by replicas.
type Promotions interface {
	// Decide records a decision; a decision through a link already used is ErrLinkUsed.
	Decide(ctx context.Context, d Decision) error
	// DecisionsFor returns the decisions for one digest of one stage, oldest first.
	DecisionsFor(ctx context.Context, pipeline, stage, digest string) ([]Decision, error)
	// SetHold records a hold or its release (the same pipeline, stage and commit replace it).
	SetHold(ctx context.Context, h Hold) error
	// HoldsFor returns the holds and releases of one stage, oldest first.
	HoldsFor(ctx context.Context, pipeline, stage string) ([]Hold, error)
	// Noticed records a notice about to be sent and reports whether it is the first of its
	// pipeline, stage, kind and key: a restart, or another replica, that would send the same
	// notice again is told false and sends nothing.
	Noticed(ctx context.Context, n Notice) (first bool, err error)
}

// Notice is one message promotion sends once: a stage waiting for approval of a candidate, or
// a stage held. Key names what it is about (the candidate, the hold).
type Notice struct {
	Pipeline string
	Stage    string
	Kind     string // NoticeApproval or NoticeHeld
	Key      string
	At       time.Time
}

// The kinds of notice. Prune tells them apart: a held notice outlives the retention while its
// stage is held through the API.
const (
	// NoticeApproval: a stage waits for approval of a candidate (Key: its event and digest).
	NoticeApproval = "approval"
	// NoticeHeld: a stage is held (Key: the commit that changed it, or the API hold's time).
	NoticeHeld = "held"
)

// Hold stops promotions into a stage: set by a person (Commit ""), or found when a commit that is
// not imagehook's changed the stage's value (Commit names it). Released ends it; a released
// commit's hold is not found again.
type Hold struct {
	Pipeline string
	Stage    string
	Commit   string
	By       string
	Comment  string
	At       time.Time
	Released bool
}

// sqlitePromotions and pgPromotions keep promotion's records in each backend's database, beside
// its events: a type of their own, so that the journal's types keep to the events.
type (
	sqlitePromotions struct{ db *sql.DB }
	pgPromotions     struct{ pool *pgxpool.Pool }
)

var (
	_ Promotions = sqlitePromotions{}
	_ Promotions = pgPromotions{}
)

// Promotions returns the store of promotion's approvals, holds and notices.
func (j *SQLite) Promotions() Promotions { return sqlitePromotions{db: j.db} }

// Promotions returns the store of promotion's approvals, holds and notices.
func (j *Postgres) Promotions() Promotions { return pgPromotions{pool: j.pool} }

// decisionTables are promotion's tables, in SQL both backends read (BIGINT is SQLite's INTEGER
// too): SQLite creates them all at open; PostgreSQL's migrations 3 and 4 create them.
const decisionTables = decisionTablesV3 + noticeTables

// noticeTables are PostgreSQL's migration 4: the notices sent.
const noticeTables = `
	CREATE TABLE IF NOT EXISTS notices (
		pipeline TEXT NOT NULL,
		stage TEXT NOT NULL,
		kind TEXT NOT NULL,
		notice_key TEXT NOT NULL,
		at BIGINT NOT NULL,
		PRIMARY KEY (pipeline, stage, kind, notice_key)
	);`

// decisionTablesV3 is PostgreSQL's migration 3 as it shipped: decisions, the one-time links used,
// and holds.
const decisionTablesV3 = `CREATE TABLE IF NOT EXISTS decisions (
		pipeline TEXT NOT NULL,
		stage TEXT NOT NULL,
		digest TEXT NOT NULL,
		approver TEXT NOT NULL,
		approve BOOLEAN NOT NULL,
		comment TEXT NOT NULL,
		at BIGINT NOT NULL,
		PRIMARY KEY (pipeline, stage, digest, approver)
	);
	CREATE TABLE IF NOT EXISTS used_links (
		id TEXT PRIMARY KEY,
		at BIGINT NOT NULL
	);
	CREATE TABLE IF NOT EXISTS holds (
		pipeline TEXT NOT NULL,
		stage TEXT NOT NULL,
		commit_hash TEXT NOT NULL,
		by_whom TEXT NOT NULL,
		comment TEXT NOT NULL,
		at BIGINT NOT NULL,
		released BOOLEAN NOT NULL,
		PRIMARY KEY (pipeline, stage, commit_hash)
	);`

// Decide records a decision in one transaction with its link's use.
func (j sqlitePromotions) Decide(ctx context.Context, d Decision) error {
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal decide: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck
	if d.Link != "" {
		res, err := tx.ExecContext(ctx, `INSERT INTO used_links (id, at) VALUES (?, ?) ON CONFLICT DO NOTHING`, d.Link, d.At.UnixMilli())
		if err != nil {
			return fmt.Errorf("journal decide: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrLinkUsed
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO decisions (pipeline, stage, digest, approver, approve, comment, at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (pipeline, stage, digest, approver) DO UPDATE SET approve = excluded.approve, comment = excluded.comment, at = excluded.at`,
		d.Pipeline, d.Stage, d.Digest, d.Approver, d.Approve, d.Comment, d.At.UnixMilli()); err != nil {
		return fmt.Errorf("journal decide: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal decide: %w", err)
	}
	return nil
}

// DecisionsFor returns the decisions for one digest of one stage, oldest first.
func (j sqlitePromotions) DecisionsFor(ctx context.Context, pipeline, stage, digest string) ([]Decision, error) {
	rows, err := j.db.QueryContext(ctx, `SELECT approver, approve, comment, at FROM decisions
		WHERE pipeline = ? AND stage = ? AND digest = ? ORDER BY at, approver`, pipeline, stage, digest)
	if err != nil {
		return nil, fmt.Errorf("journal decisions: %w", err)
	}
	defer rows.Close()
	return scanDecisions(rows, pipeline, stage, digest)
}

// Decide records a decision in one transaction with its link's use.
func (j pgPromotions) Decide(ctx context.Context, d Decision) error {
	return pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		if d.Link != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO used_links (id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, d.Link, d.At.UnixMilli())
			if err != nil {
				return fmt.Errorf("journal decide: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return ErrLinkUsed
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO decisions (pipeline, stage, digest, approver, approve, comment, at) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (pipeline, stage, digest, approver) DO UPDATE SET approve = excluded.approve, comment = excluded.comment, at = excluded.at`,
			d.Pipeline, d.Stage, d.Digest, d.Approver, d.Approve, d.Comment, d.At.UnixMilli())
		if err != nil {
			return fmt.Errorf("journal decide: %w", err)
		}
		return nil
	})
}

// DecisionsFor returns the decisions for one digest of one stage, oldest first.
func (j pgPromotions) DecisionsFor(ctx context.Context, pipeline, stage, digest string) ([]Decision, error) {
	rows, err := j.pool.Query(ctx, `SELECT approver, approve, comment, at FROM decisions
		WHERE pipeline = $1 AND stage = $2 AND digest = $3 ORDER BY at, approver`, pipeline, stage, digest)
	if err != nil {
		return nil, fmt.Errorf("journal decisions: %w", err)
	}
	defer rows.Close()
	return scanDecisions(rows, pipeline, stage, digest)
}

func scanDecisions(rs rows, pipeline, stage, digest string) ([]Decision, error) {
	var out []Decision
	for rs.Next() {
		d := Decision{Pipeline: pipeline, Stage: stage, Digest: digest}
		var at int64
		if err := rs.Scan(&d.Approver, &d.Approve, &d.Comment, &at); err != nil {
			return nil, fmt.Errorf("journal decisions: %w", err)
		}
		d.At = time.UnixMilli(at).UTC()
		out = append(out, d)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("journal decisions: %w", err)
	}
	return out, nil
}

const (
	upsertHold = `INSERT INTO holds (pipeline, stage, commit_hash, by_whom, comment, at, released) VALUES (%s)
		ON CONFLICT (pipeline, stage, commit_hash) DO UPDATE SET by_whom = excluded.by_whom, comment = excluded.comment,
		at = excluded.at, released = excluded.released`
	selectHolds = `SELECT commit_hash, by_whom, comment, at, released FROM holds WHERE pipeline = %s AND stage = %s ORDER BY at, commit_hash`
)

// SetHold records a hold or its release.
func (j sqlitePromotions) SetHold(ctx context.Context, h Hold) error {
	_, err := j.db.ExecContext(ctx, fmt.Sprintf(upsertHold, "?, ?, ?, ?, ?, ?, ?"),
		h.Pipeline, h.Stage, h.Commit, h.By, h.Comment, h.At.UnixMilli(), h.Released)
	if err != nil {
		return fmt.Errorf("journal hold: %w", err)
	}
	return nil
}

// HoldsFor returns the holds and releases of one stage, oldest first.
func (j sqlitePromotions) HoldsFor(ctx context.Context, pipeline, stage string) ([]Hold, error) {
	rows, err := j.db.QueryContext(ctx, fmt.Sprintf(selectHolds, "?", "?"), pipeline, stage)
	if err != nil {
		return nil, fmt.Errorf("journal holds: %w", err)
	}
	defer rows.Close()
	return scanHolds(rows, pipeline, stage)
}

// SetHold records a hold or its release.
func (j pgPromotions) SetHold(ctx context.Context, h Hold) error {
	_, err := j.pool.Exec(ctx, fmt.Sprintf(upsertHold, "$1, $2, $3, $4, $5, $6, $7"),
		h.Pipeline, h.Stage, h.Commit, h.By, h.Comment, h.At.UnixMilli(), h.Released)
	if err != nil {
		return fmt.Errorf("journal hold: %w", err)
	}
	return nil
}

// HoldsFor returns the holds and releases of one stage, oldest first.
func (j pgPromotions) HoldsFor(ctx context.Context, pipeline, stage string) ([]Hold, error) {
	rows, err := j.pool.Query(ctx, fmt.Sprintf(selectHolds, "$1", "$2"), pipeline, stage)
	if err != nil {
		return nil, fmt.Errorf("journal holds: %w", err)
	}
	defer rows.Close()
	return scanHolds(rows, pipeline, stage)
}

func scanHolds(rs rows, pipeline, stage string) ([]Hold, error) {
	var out []Hold
	for rs.Next() {
		h := Hold{Pipeline: pipeline, Stage: stage}
		var at int64
		if err := rs.Scan(&h.Commit, &h.By, &h.Comment, &at, &h.Released); err != nil {
			return nil, fmt.Errorf("journal holds: %w", err)
		}
		h.At = time.UnixMilli(at).UTC()
		out = append(out, h)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("journal holds: %w", err)
	}
	return out, nil
}

const insertNotice = `INSERT INTO notices (pipeline, stage, kind, notice_key, at) VALUES (%s) ON CONFLICT DO NOTHING`

// Noticed records a notice; a second record of the same one is not the first.
func (j sqlitePromotions) Noticed(ctx context.Context, n Notice) (bool, error) {
	res, err := j.db.ExecContext(ctx, fmt.Sprintf(insertNotice, "?, ?, ?, ?, ?"), n.Pipeline, n.Stage, n.Kind, n.Key, n.At.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("journal notice: %w", err)
	}
	added, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("journal notice: %w", err)
	}
	return added == 1, nil
}

// pruneNotices deletes the notices no stage can send again, with the journal's retention (Prune's
// t): a notice row is needed only while the stage might still send it, and a stage sends again
// only what it still waits on. So every notice recorded before t goes, except the held notices of
// a stage a person holds through the API (a holds row without a commit, not released), which may
// last any time; those go at the first Prune after the release.
//
// Why older than the retention is enough for the others: an approval notice's candidate is the
// event the stage before runs, finished and received before the notice was recorded, so the same
// Prune deletes it, and a stage whose earlier stage's event is pruned has no candidate. A hold
// found in git is found only beside the event imagehook last wrote to the stage, received before
// the person's commit and so pruned too. The argument holds within the replicas' clock skew (the
// event's time is the receiving replica's, the notice's the promoting one's); an event still
// running past the retention is not pruned, and a candidate waiting on its own readiness finishes
// within its watch timeout, far inside any retention.
const pruneNotices = `DELETE FROM notices WHERE at < %s AND NOT (kind = '` + NoticeHeld + `' AND EXISTS (
	SELECT 1 FROM holds WHERE holds.pipeline = notices.pipeline AND holds.stage = notices.stage
		AND holds.commit_hash = '' AND NOT holds.released))`

// prune is pruneNotices on SQLite.
func (j sqlitePromotions) prune(ctx context.Context, t time.Time) error {
	if _, err := j.db.ExecContext(ctx, fmt.Sprintf(pruneNotices, "?"), t.UnixMilli()); err != nil {
		return fmt.Errorf("journal prune notices: %w", err)
	}
	return nil
}

// prune is pruneNotices on PostgreSQL.
func (j pgPromotions) prune(ctx context.Context, t time.Time) error {
	if _, err := j.pool.Exec(ctx, fmt.Sprintf(pruneNotices, "$1"), t.UnixMilli()); err != nil {
		return fmt.Errorf("journal prune notices: %w", err)
	}
	return nil
}

// Noticed records a notice; a second record of the same one is not the first.
func (j pgPromotions) Noticed(ctx context.Context, n Notice) (bool, error) {
	tag, err := j.pool.Exec(ctx, fmt.Sprintf(insertNotice, "$1, $2, $3, $4, $5"), n.Pipeline, n.Stage, n.Kind, n.Key, n.At.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("journal notice: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
