package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/imagehook/imagehook/event"
)

// dedupKey identifies a delivery of the same content for the same targets: only a digest says
// that two pushes of a tag carried the same image. Like a target's key it is an event.JoinKey, so
// both backends store the same bytes. A promotion has none: its id already makes it happen once,
// and promoting the same digest again after a hold is released must not read as a redelivery.
func dedupKey(ev *event.Event) string {
	if ev.Push.Digest == "" || ev.Push.Source == event.SourcePromotion {
		return ""
	}
	targets, _ := json.Marshal(ev.Targets)
	return event.JoinKey(ev.Hook, ev.Push.Ref(), string(targets))
}

// Separators of the keys of earlier releases: NUL on SQLite, and U+2400 where PostgreSQL (whose
// text cannot hold NUL) stored them.
const (
	legacySep   = "\x00"
	legacyPgSep = "\u2400"
)

// rekey turns a key of an earlier release into event.JoinKey's form.
func rekey(old, sep string) string { return event.JoinKey(strings.Split(old, sep)...) }

// sqliteKeysVersion is the SQLite journal's user_version once its keys are JoinKeys.
const sqliteKeysVersion = 1

// rekeySQLite rewrites, once, the NUL-joined keys an earlier release stored, so that what was
// applied before an upgrade still protects against replays after it.
func rekeySQLite(db *sql.DB) error {
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("journal keys: %w", err)
	}
	if v >= sqliteKeysVersion {
		return nil
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("journal keys: %w", err)
	}
	defer tx.Rollback()
	if err := rekeyRows(func(q string, args ...any) ([][2]string, error) {
		rows, err := tx.Query(q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out [][2]string
		for rows.Next() {
			var a, b string
			if err := rows.Scan(&a, &b); err != nil {
				return nil, err
			}
			out = append(out, [2]string{a, b})
		}
		return out, rows.Err()
	}, func(q string, args ...any) error {
		_, err := tx.Exec(q, args...)
		return err
	}, legacySep, "instr(target, char(0)) > 0", "instr(dedup, char(0)) > 0", "?", "?"); err != nil {
		return fmt.Errorf("journal keys: %w", err)
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, sqliteKeysVersion)); err != nil {
		return fmt.Errorf("journal keys: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal keys: %w", err)
	}
	return nil
}

// rekeyPostgres is the PostgreSQL journal's second migration: keys stored with U+2400 between
// their parts become JoinKeys.
func rekeyPostgres(ctx context.Context, tx pgx.Tx) error {
	return rekeyRows(func(q string, args ...any) ([][2]string, error) {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var a, b string
			err := r.Scan(&a, &b)
			return [2]string{a, b}, err
		})
	}, func(q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}, legacyPgSep, "strpos(target, '"+legacyPgSep+"') > 0", "strpos(dedup, '"+legacyPgSep+"') > 0", "$1", "$2")
}

// rekeyRows rewrites the legacy keys of the applied table (the newer record wins where two old
// keys meet) and of the events' dedup column, in SQL of either dialect: the filters select the
// rows with legacy keys, p1 and p2 are the dialect's placeholders.
func rekeyRows(query func(q string, args ...any) ([][2]string, error), exec func(q string, args ...any) error, sep, appliedFilter, dedupFilter, p1, p2 string) error {
	rows, err := query(`SELECT target, event FROM applied WHERE ` + appliedFilter)
	if err != nil {
		return err
	}
	for _, r := range rows {
		old := r[0]
		// Copy the row under its new key, keeping the newer record if one is there already.
		if err := exec(`INSERT INTO applied (target, seq, pushed_at, event) SELECT `+p1+`, seq, pushed_at, event FROM applied WHERE target = `+p2+`
			ON CONFLICT (target) DO UPDATE SET seq = excluded.seq, pushed_at = excluded.pushed_at, event = excluded.event WHERE excluded.seq > applied.seq`,
			rekey(old, sep), old); err != nil {
			return err
		}
		if err := exec(`DELETE FROM applied WHERE target = `+p1, old); err != nil {
			return err
		}
	}
	rows, err = query(`SELECT id, dedup FROM events WHERE ` + dedupFilter)
	if err != nil {
		return err
	}
	for _, r := range rows {
		// hook, reference, targets' JSON: JSON escapes a NUL, so only the first two separate.
		parts := strings.SplitN(r[1], sep, 3)
		if err := exec(`UPDATE events SET dedup = `+p1+` WHERE id = `+p2, event.JoinKey(parts...), r[0]); err != nil {
			return err
		}
	}
	return nil
}
