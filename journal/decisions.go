package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// Decisions is what promotion needs of a journal backend: approvals, durable and shared by
// replicas.
type Decisions interface {
	// Decide records a decision; a decision through a link already used is ErrLinkUsed.
	Decide(ctx context.Context, d Decision) error
	// DecisionsFor returns the decisions for one digest of one stage, oldest first.
	DecisionsFor(ctx context.Context, pipeline, stage, digest string) ([]Decision, error)
}

var (
	_ Decisions = (*SQLite)(nil)
	_ Decisions = (*Postgres)(nil)
)

// decisionTables are the tables of decisions, in SQL both backends read (BIGINT is SQLite's
// INTEGER too).
const decisionTables = `CREATE TABLE IF NOT EXISTS decisions (
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
	);`

// Decide records a decision in one transaction with its link's use.
func (j *SQLite) Decide(ctx context.Context, d Decision) error {
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
func (j *SQLite) DecisionsFor(ctx context.Context, pipeline, stage, digest string) ([]Decision, error) {
	rows, err := j.db.QueryContext(ctx, `SELECT approver, approve, comment, at FROM decisions
		WHERE pipeline = ? AND stage = ? AND digest = ? ORDER BY at, approver`, pipeline, stage, digest)
	if err != nil {
		return nil, fmt.Errorf("journal decisions: %w", err)
	}
	defer rows.Close()
	return scanDecisions(rows, pipeline, stage, digest)
}

// Decide records a decision in one transaction with its link's use.
func (j *Postgres) Decide(ctx context.Context, d Decision) error {
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
func (j *Postgres) DecisionsFor(ctx context.Context, pipeline, stage, digest string) ([]Decision, error) {
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
