package manifests

import (
	"bytes"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Overlay layers rewrites not yet committed over a base tree, so that two rewrites of the same
// file (two events of one batch) see each other's changes. It is an fs.FS, and Index reads it like
// any tree: an entry on the path of a pending rewrite has no object hash, so it is read afresh.
type Overlay struct {
	base  fs.FS
	files map[string][]byte
}

var (
	_ fs.ReadDirFS  = (*Overlay)(nil)
	_ fs.ReadFileFS = (*Overlay)(nil)
)

// NewOverlay returns an overlay over base with nothing pending.
func NewOverlay(base fs.FS) *Overlay { return &Overlay{base: base, files: map[string][]byte{}} }

// Store makes a rewrite's files pending.
func (o *Overlay) Store(res Result) {
	for name, data := range res.Files {
		o.files[name] = data
	}
}

// Files returns the pending files by slash-separated path: what a commit writes.
func (o *Overlay) Files() map[string][]byte { return o.files }

// Open opens a pending file, or the base's.
func (o *Overlay) Open(name string) (fs.File, error) {
	if data, ok := o.files[name]; ok {
		return &memFile{Reader: bytes.NewReader(data), name: path.Base(name), size: int64(len(data))}, nil
	}
	return o.base.Open(name)
}

// ReadFile reads a pending file, or the base's.
func (o *Overlay) ReadFile(name string) ([]byte, error) {
	if data, ok := o.files[name]; ok {
		return data, nil
	}
	return fs.ReadFile(o.base, name)
}

// ReadDir lists the base directory. An entry on the path of a pending rewrite loses its object hash
// (the hash names the base's content, not the rewritten one), so an index reads it afresh.
func (o *Overlay) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(o.base, name)
	if err != nil || len(o.files) == 0 {
		return entries, err
	}
	for i, e := range entries {
		p := path.Join(name, e.Name())
		for f := range o.files {
			if f == p || strings.HasPrefix(f, p+"/") {
				entries[i] = unhashed{e}
				break
			}
		}
	}
	return entries, nil
}

// unhashed hides a directory entry's object hash.
type unhashed struct{ fs.DirEntry }

// ObjectHash returns "": the entry's content differs from its base's.
func (unhashed) ObjectHash() string { return "" }

// memFile is a pending file, opened.
type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Name() string               { return f.name }
func (f *memFile) Size() int64                { return f.size }
func (f *memFile) Mode() fs.FileMode          { return 0o644 }
func (f *memFile) ModTime() time.Time         { return time.Time{} }
func (f *memFile) IsDir() bool                { return false }
func (f *memFile) Sys() any                   { return nil }
