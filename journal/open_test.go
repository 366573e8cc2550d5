package journal

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagehook/imagehook/internal/pgtest"
)

// TestOpen: the options choose the backend (SQLite in the data directory by default, PostgreSQL
// by DSN), and an unknown driver is an error rather than a silent default.
func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name, driver string
		shared       bool
	}{
		{"default", "", false},
		{"sqlite", "sqlite", false},
		{"postgres", "postgres", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, dir := Config{Driver: tc.driver}, t.TempDir()
			if tc.driver == "postgres" {
				o.DSN = pgtest.Start(t).DSN
			}
			if got := o.Shared(); got != tc.shared {
				t.Fatalf("Shared() = %v, want %v", got, tc.shared)
			}
			j, err := Open(context.Background(), o, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if err := j.Ping(context.Background()); err != nil {
				t.Fatalf("ping: %v", err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "journal.db"))
			if got, want := statErr == nil, !tc.shared; got != want {
				t.Fatalf("journal.db in the data dir: %v, want %v (%v)", got, want, statErr)
			}
		})
	}
	if _, err := Open(context.Background(), Config{Driver: "mysql"}, t.TempDir()); err == nil {
		t.Fatal("driver mysql opened, want an error")
	}
}
