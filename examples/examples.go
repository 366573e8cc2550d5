// Package examples embeds the sample manifests repository that the quickstart seeds, so that the
// binary runs the quickstart from any directory.
package examples

import (
	"embed"
	"io/fs"
)

//go:embed manifests
var manifests embed.FS

// Manifests returns the sample manifests repository's files.
func Manifests() fs.FS {
	sub, err := fs.Sub(manifests, "manifests")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}
