// Package journalconfig is the journal: section of the configuration, in a package of its own so
// that config can hold it without the database drivers the journal links.
package journalconfig

// Journal chooses the journal's backend.
type Journal struct {
	// Driver is sqlite (default) or postgres.
	Driver string `yaml:"driver"`
	// DSN is PostgreSQL's connection string (postgres://user:password@host/db?sslmode=…).
	DSN     string `yaml:"dsn" secret:"true"`
	DSNFile string `yaml:"dsnFile" secretfile:"DSN"`
}

// Shared reports whether several processes may work on this journal (PostgreSQL): they then
// share its queues out (package replica), with this DSN.
func (j Journal) Shared() bool { return j.Driver == "postgres" }
