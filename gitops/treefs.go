package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeFS is a read-only fs.FS over a git tree, so the manifests package reads a commit straight from
// the object store: no worktree to check out or reset.
type treeFS struct {
	root *object.Tree
	// dirs holds the directories looked up lately (nil: none kept). go-git's own path lookup
	// (Tree.FindEntry on the root) keeps every directory it passes through for as long as the root
	// lives: reading every file of a 200,000-file tip for the first index build held all of its
	// trees, ~24 MB, until the event ended.
	dirs *dirTrees
}

// newTreeFS is the view of root that keeps only the directories it used last.
func newTreeFS(root *object.Tree) treeFS { return treeFS{root: root, dirs: &dirTrees{}} }

// dirTrees is a small set of decoded directories by path; it is emptied when full (a walk reads a
// directory's files one after another, so the ones it needs come back at once).
type dirTrees struct {
	mu sync.Mutex
	m  map[string]*object.Tree
}

// maxDirTrees bounds dirTrees: deeper than any real directory nesting, small beside a big tree.
const maxDirTrees = 64

func (d *dirTrees) get(name string) (*object.Tree, bool) {
	if d == nil {
		return nil, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.m[name]
	return t, ok
}

func (d *dirTrees) put(name string, t *object.Tree) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || len(d.m) >= maxDirTrees {
		d.m = make(map[string]*object.Tree, maxDirTrees)
	}
	d.m[name] = t
}

var (
	_ fs.ReadDirFS  = treeFS{}
	_ fs.ReadFileFS = treeFS{}
)

func (t treeFS) lookup(op, name string) (*object.Tree, *object.TreeEntry, error) {
	if !fs.ValidPath(name) {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return t.root, nil, nil
	}
	parentName, base := path.Split(name)
	parent, err := t.dir(strings.TrimSuffix(parentName, "/"))
	if err != nil {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	e, err := parent.FindEntry(base) // one element: go-git keeps no path cache for it
	if err != nil {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	if e.Mode == filemode.Dir {
		sub, err := t.dir(name)
		if err != nil {
			return nil, nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		return sub, e, nil
	}
	return nil, e, nil
}

// dir returns the directory at name ("" is the root), from dirs when it is there.
func (t treeFS) dir(name string) (*object.Tree, error) {
	if name == "" || name == "." {
		return t.root, nil
	}
	if d, ok := t.dirs.get(name); ok {
		return d, nil
	}
	parentName, base := path.Split(name)
	parent, err := t.dir(strings.TrimSuffix(parentName, "/"))
	if err != nil {
		return nil, err
	}
	e, err := parent.FindEntry(base)
	if err != nil {
		return nil, err
	}
	if e.Mode != filemode.Dir {
		return nil, fmt.Errorf("%s: not a directory", name)
	}
	sub, err := parent.Tree(base) // one element again: decoded, not kept by parent
	if err != nil {
		return nil, err
	}
	t.dirs.put(name, sub)
	return sub, nil
}

// Hash returns the git object hash of a file or directory ("." the root): two views in which a
// path has the same hash hold the same bytes under it, so what was read there still holds.
func (t treeFS) Hash(name string) (string, error) {
	name = path.Clean(name)
	if name == "." || name == "" {
		return t.root.Hash.String(), nil
	}
	_, e, err := t.lookup("hash", name)
	if err != nil {
		return "", err
	}
	return e.Hash.String(), nil
}

func (t treeFS) Open(name string) (fs.File, error) {
	dir, e, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if dir != nil {
		return &treeDir{info: entryInfo{name: path.Base(name), mode: filemode.Dir}, fsys: t, name: name}, nil
	}
	data, err := t.readEntry(name, e)
	if err != nil {
		return nil, err
	}
	return &treeFile{Reader: bytes.NewReader(data), info: entryInfo{name: e.Name, mode: e.Mode, size: int64(len(data))}}, nil
}

func (t treeFS) ReadFile(name string) ([]byte, error) {
	dir, e, err := t.lookup("read", name)
	if err != nil {
		return nil, err
	}
	if dir != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return t.readEntry(name, e)
}

func (t treeFS) readEntry(name string, e *object.TreeEntry) ([]byte, error) {
	if e.Mode != filemode.Regular && e.Mode != filemode.Executable && e.Mode != filemode.Deprecated {
		// Symlinks and submodules are not followed: they could point outside the repository.
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := t.root.TreeEntryFile(e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	r, err := f.Reader()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (t treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	dir, _, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	out := make([]fs.DirEntry, 0, len(dir.Entries))
	for _, e := range dir.Entries {
		size := func() int64 { return 0 }
		if e.Mode != filemode.Dir {
			// Info is rarely asked for (a walk needs only the type): read the blob's size then.
			e := e
			size = func() int64 {
				f, err := dir.TreeEntryFile(&e)
				if err != nil {
					return 0
				}
				return f.Size
			}
		}
		out = append(out, dirEntry{entryInfo: entryInfo{name: e.Name, mode: e.Mode}, size: size, hash: e.Hash})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

type entryInfo struct {
	name string
	mode filemode.FileMode
	size int64
}

func (e entryInfo) Name() string               { return e.name }
func (e entryInfo) Size() int64                { return e.size }
func (e entryInfo) ModTime() time.Time         { return time.Time{} }
func (e entryInfo) IsDir() bool                { return e.mode == filemode.Dir }
func (e entryInfo) Sys() any                   { return nil }
func (e entryInfo) Type() fs.FileMode          { return e.Mode().Type() }
func (e entryInfo) Info() (fs.FileInfo, error) { return e, nil }
func (e entryInfo) Mode() fs.FileMode {
	m, err := e.mode.ToOSFileMode()
	if err != nil {
		return fs.ModeIrregular
	}
	return m
}

// dirEntry is a directory listing's entry, whose size is read only when Info is called.
type dirEntry struct {
	entryInfo
	size func() int64
	hash plumbing.Hash
}

// ObjectHash returns the entry's git object hash: a directory's changes exactly when something
// under it does, a file's when its content does. An index of the manifests uses it to skip
// unchanged subtrees and never read an unchanged file twice.
func (d dirEntry) ObjectHash() string { return d.hash.String() }

func (d dirEntry) Info() (fs.FileInfo, error) {
	info := d.entryInfo
	info.size = d.size()
	return info, nil
}

type treeFile struct {
	*bytes.Reader
	info entryInfo
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Close() error               { return nil }

type treeDir struct {
	info    entryInfo
	fsys    treeFS
	name    string
	entries []fs.DirEntry
	read    bool
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Close() error               { return nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

// ReadDir follows fs.ReadDirFile: n > 0 reads in pages and ends with io.EOF.
func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		entries, err := d.fsys.ReadDir(d.name)
		if err != nil {
			return nil, err
		}
		d.entries, d.read = entries, true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n]
	d.entries = d.entries[n:]
	return out, nil
}

// writeTree stores the blobs of files (slash paths → content) and the trees on their paths, reusing
// every untouched subtree of base (nil for an empty tree), and returns the new root tree's hash.
// The hashes of the objects it writes are appended to written, when given: they are what a push
// must send.
func writeTree(s storer.EncodedObjectStorer, base *object.Tree, files map[string][]byte, written *[]plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if base != nil {
		entries = append(entries, base.Entries...)
	}
	subdirs := map[string]map[string][]byte{}
	for p, data := range files {
		dir, rest, nested := cutFirst(p)
		if nested {
			if subdirs[dir] == nil {
				subdirs[dir] = map[string][]byte{}
			}
			subdirs[dir][rest] = data
			continue
		}
		h, err := writeBlob(s, data)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if written != nil {
			*written = append(*written, h)
		}
		entries = upsert(entries, object.TreeEntry{Name: p, Mode: filemode.Regular, Hash: h})
	}
	for dir, sub := range subdirs {
		var subBase *object.Tree
		for _, e := range entries {
			if e.Name == dir {
				if e.Mode != filemode.Dir {
					return plumbing.ZeroHash, fmt.Errorf("%s: not a directory", dir)
				}
				t, err := object.GetTree(s, e.Hash)
				if err != nil {
					return plumbing.ZeroHash, fmt.Errorf("read tree %s: %w", dir, err)
				}
				subBase = t
			}
		}
		h, err := writeTree(s, subBase, sub, written)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries = upsert(entries, object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: h})
	}
	// Git orders entries by name, comparing a directory as if its name ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	obj := s.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode tree: %w", err)
	}
	h, err := s.SetEncodedObject(obj)
	if err == nil && written != nil {
		*written = append(*written, h)
	}
	return h, err
}

func cutFirst(p string) (string, string, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

// upsert replaces the entry of the same name, keeping its mode for files (an executable stays one).
func upsert(entries []object.TreeEntry, e object.TreeEntry) []object.TreeEntry {
	for i := range entries {
		if entries[i].Name == e.Name {
			if e.Mode != filemode.Dir && entries[i].Mode != filemode.Dir {
				e.Mode = entries[i].Mode
			}
			entries[i] = e
			return entries
		}
	}
	return append(entries, e)
}

func writeBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}
