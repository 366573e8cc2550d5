package journal

import (
	"context"
	"fmt"
	"path/filepath"
)

// Options say which journal to open: the config's journal section and the data directory.
type Options struct {
	// Driver is "sqlite" (also when empty) or "postgres".
	Driver string
	// DSN is PostgreSQL's connection string (postgres only).
	DSN string
	// Dir is the data directory, which holds the SQLite journal (sqlite only).
	Dir string
}

// Shared reports whether several processes may work on the journal these options open
// (PostgreSQL): they then share its queues out (package replica), with this DSN.
func (o Options) Shared() bool { return o.Driver == "postgres" }

// Open opens the journal the options name, so that its callers do not choose the backend.
func Open(ctx context.Context, o Options) (Journal, error) {
	switch o.Driver {
	case "", "sqlite":
		j, err := OpenSQLite(filepath.Join(o.Dir, "journal.db"))
		if err != nil {
			return nil, err
		}
		return j, nil
	case "postgres":
		j, err := OpenPostgres(ctx, o.DSN)
		if err != nil {
			return nil, err
		}
		return j, nil
	default:
		return nil, fmt.Errorf("journal: driver %q is not sqlite or postgres", o.Driver)
	}
}
