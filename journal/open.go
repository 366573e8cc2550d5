package journal

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/imagehook/imagehook/journal/journalconfig"
)

// Config is the journal: section of the configuration.
type Config = journalconfig.Journal

// Open opens the journal the section names, SQLite's in dir, so that its callers do not choose
// the backend.
func Open(ctx context.Context, o Config, dir string) (Journal, error) {
	switch o.Driver {
	case "", "sqlite":
		j, err := OpenSQLite(filepath.Join(dir, "journal.db"))
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
