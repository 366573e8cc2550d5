package manifests

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/workload"
)

// Index remembers where images live in a repository, so that locating a target costs what changed
// since the last event, not the size of the repository. It is keyed by git object hash (a file
// system that lists entries with an ObjectHash method, such as gitops' tree view, makes it usable):
// for each file, the workload names, image repositories and marker ids it holds; for each directory,
// the union of everything under it. An unchanged file is never read again, an unchanged directory
// never walked again. It is derived data: a missing, corrupt or old-format file is rebuilt, never
// trusted. The index only narrows the files read: every candidate is still read, parsed and
// verified from its bytes before anything is written.
type Index struct {
	mu    sync.Mutex
	blobs map[string]*entrySummary
	trees map[string]*entrySummary
	// limits are an event's read limits (Budget), applied to each file alone: a file no event could
	// read or parse is not summarised (it is always a candidate, and the event names it skipped).
	limits Budget
	file   string
	dirty  bool
	saved  time.Time
	// progress, when set (IndexProgress), hears how many files have been summarised, every 5,000.
	progress func(files int)
	// gen counts lookups; directory summaries untouched for keepGenerations are dropped, so that the
	// trees of old commits do not pile up (files are kept: a skipped subtree's files are still valid).
	gen int
}

// keepGenerations is how many lookups a directory summary survives untouched.
const keepGenerations = 32

// entrySummary is what a file, or everything under a directory, holds. Sets are sorted.
type entrySummary struct {
	Names   []string // metadata.name of workload documents
	Repos   []string // last path element of each container image's repository
	Markers []string // marker ids
	// Opaque marks a file the index could not summarise (too big, a document over its budget, not
	// YAML): it is always a candidate, so that the event names it as not read as it would without
	// the index.
	Opaque bool
	// used is the lookup generation that last touched a directory's summary.
	used int
}

// nothing is the summary of the many files that hold no workload, image or marker (ConfigMaps,
// Services): one shared value instead of one each keeps a big repository's index small.
var nothing = &entrySummary{}

func intern(s *entrySummary) *entrySummary {
	if !s.Opaque && len(s.Names) == 0 && len(s.Repos) == 0 && len(s.Markers) == 0 {
		return nothing
	}
	return s
}

// indexFormat changes whenever the file's layout or the summary's meaning does.
// v2: files are summarised one document at a time under per-document budgets, so that big files
// the v1 limits left opaque are summarised now.
// v3: the file is a header and then chunks of indexChunkEntries entries, so that a save encodes one
// chunk at a time instead of the whole index into one buffer (a 200,000-file first start's peak).
const indexFormat = "imagehook-index-v3"

// indexHeader is the file's first gob value; indexChunk values follow until one has End set.
type indexHeader struct {
	Format string
}

type indexChunk struct {
	Blobs []indexEntry
	Trees []indexEntry
	End   bool
}

type indexEntry struct {
	Hash    string
	Summary *entrySummary
}

// indexChunkEntries is how many entries one gob value holds: about 200 KB encoded.
const indexChunkEntries = 4096

// IndexOption sets up an index as OpenIndex opens it.
type IndexOption func(*Index)

// IndexProgress makes the index tell fn how many files it has summarised, every 5,000: a first
// build on a big repository takes a while, and a log line can say how far it is.
func IndexProgress(fn func(files int)) IndexOption { return func(ix *Index) { ix.progress = fn } }

// OpenIndex loads the index kept at file, or starts an empty one when it is missing, corrupt or of
// another format. limits are the events' read limits (the zero Budget: the defaults).
func OpenIndex(file string, limits Budget, opts ...IndexOption) *Index {
	limits.bytes, limits.nodes = 0, 0
	ix := &Index{blobs: map[string]*entrySummary{}, trees: map[string]*entrySummary{}, limits: limits, file: file, saved: time.Now()}
	for _, o := range opts {
		o(ix)
	}
	if file == "" {
		return ix
	}
	f, err := os.Open(file)
	if err != nil {
		return ix
	}
	defer f.Close()
	if blobs, trees, ok := readIndex(bufio.NewReader(f)); ok {
		ix.blobs, ix.trees = blobs, trees
	}
	return ix // a missing, corrupt or old-format file: rebuilt as events need it
}

// readIndex decodes a file written by writeIndex; ok is false unless it is whole and of this format.
func readIndex(r io.Reader) (blobs, trees map[string]*entrySummary, ok bool) {
	dec := gob.NewDecoder(r)
	var h indexHeader
	if err := dec.Decode(&h); err != nil || h.Format != indexFormat {
		return nil, nil, false
	}
	blobs, trees = map[string]*entrySummary{}, map[string]*entrySummary{}
	for {
		var c indexChunk
		if err := dec.Decode(&c); err != nil {
			return nil, nil, false
		}
		for _, e := range c.Blobs {
			if e.Summary == nil {
				e.Summary = nothing
			}
			blobs[e.Hash] = intern(e.Summary)
		}
		for _, e := range c.Trees {
			if e.Summary == nil {
				e.Summary = &entrySummary{}
			}
			trees[e.Hash] = e.Summary
		}
		if c.End {
			return blobs, trees, true
		}
	}
}

// writeIndex encodes the index a chunk at a time, so that what a save holds beyond the index is
// one chunk's entries and its encoding, not the whole file.
func writeIndex(w io.Writer, blobs, trees map[string]*entrySummary) error {
	enc := gob.NewEncoder(w)
	if err := enc.Encode(indexHeader{Format: indexFormat}); err != nil {
		return err
	}
	var c indexChunk
	flush := func(end bool) error {
		c.End = end
		err := enc.Encode(&c)
		c.Blobs, c.Trees = c.Blobs[:0], c.Trees[:0]
		return err
	}
	for h, s := range blobs {
		c.Blobs = append(c.Blobs, indexEntry{Hash: h, Summary: s})
		if len(c.Blobs) == indexChunkEntries {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	for h, s := range trees {
		c.Trees = append(c.Trees, indexEntry{Hash: h, Summary: s})
		if len(c.Blobs)+len(c.Trees) >= indexChunkEntries {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	return flush(true)
}

// Len returns the number of files and directories summarised.
func (ix *Index) Len() (files, dirs int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.blobs), len(ix.trees)
}

// Save writes the index when it changed, atomically; with force false, at most every 10 seconds.
func (ix *Index) Save(force bool) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.file == "" || !ix.dirty || !force && time.Since(ix.saved) < 10*time.Second {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(ix.file), 0o700); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	tmp := ix.file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	w := bufio.NewWriter(f)
	err = writeIndex(w, ix.blobs, ix.trees)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, ix.file)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("index: %w", err)
	}
	ix.dirty, ix.saved = false, time.Now()
	return nil
}

// query is what a lookup looks for: a workload name, an image repository's last path element, or
// a marker id.
type query struct {
	name, repo, marker string
}

func (s *entrySummary) matches(q query) bool {
	if s.Opaque {
		return true
	}
	has := func(set []string, v string) bool { _, ok := slices.BinarySearch(set, v); return ok }
	switch {
	case q.marker != "":
		return has(s.Markers, q.marker)
	case q.name != "":
		return has(s.Names, q.name)
	}
	return has(s.Repos, q.repo)
}

// hashed is a directory entry that knows its object hash.
type hashed interface{ ObjectHash() string }

// candidates returns the YAML files under dir that may hold what q asks for, and whether the file
// system lets the index answer (else the caller walks and reads everything, as without an index).
func (ix *Index) candidates(fsys fs.FS, dir string, q query) ([]candidate, bool, error) {
	if ix == nil {
		return nil, false, nil
	}
	if st, err := fs.Stat(fsys, dir); err == nil && st.Mode().IsRegular() {
		return []candidate{{dir, st.Size()}}, true, nil
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, true, fmt.Errorf("path %s: %w", dir, err)
	}
	if len(entries) > 0 {
		if _, ok := entries[0].(hashed); !ok {
			return nil, false, nil
		}
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen++
	var out []candidate
	err = ix.collect(fsys, dir, entries, q, &out)
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	if ix.gen%keepGenerations == 0 {
		for h, t := range ix.trees {
			if t.used < ix.gen-keepGenerations {
				delete(ix.trees, h)
				ix.dirty = true
			}
		}
	}
	return out, true, err
}

// collect descends into the directories whose summary may match and lists the files that may.
func (ix *Index) collect(fsys fs.FS, dir string, entries []fs.DirEntry, q query, out *[]candidate) error {
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		h := objectHash(e)
		switch {
		case e.IsDir():
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			s, err := ix.tree(fsys, p, h)
			if err != nil {
				return err
			}
			if !s.matches(q) {
				continue
			}
			sub, err := fs.ReadDir(fsys, p)
			if err != nil {
				continue // an unreadable subdirectory does not hide the target elsewhere
			}
			if err := ix.collect(fsys, p, sub, q, out); err != nil {
				return err
			}
		case yamlName(e):
			if ix.blob(fsys, p, h, e).matches(q) {
				*out = append(*out, candidate{p, entrySize(e)})
			}
		}
	}
	return nil
}

func objectHash(e fs.DirEntry) string {
	if h, ok := e.(hashed); ok {
		return h.ObjectHash()
	}
	return ""
}

// yamlName reports whether a directory entry is a regular file imagehook reads as YAML.
func yamlName(e fs.DirEntry) bool {
	if !e.Type().IsRegular() {
		return false // a symlink could point outside the repository
	}
	ext := path.Ext(e.Name())
	return ext == ".yaml" || ext == ".yml" || e.Name() == "Kustomization"
}

// tree returns the summary of everything under a directory: cached by hash, or the union of its
// entries' (an entry without a hash, an edit not yet committed, is summarised but not cached).
func (ix *Index) tree(fsys fs.FS, dir, hash string) (*entrySummary, error) {
	if s, ok := ix.trees[hash]; ok && hash != "" {
		s.used = ix.gen
		return s, nil
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return &entrySummary{Opaque: true}, nil
	}
	var parts []*entrySummary
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		switch {
		case e.IsDir() && !strings.HasPrefix(e.Name(), "."):
			s, err := ix.tree(fsys, p, objectHash(e))
			if err != nil {
				return nil, err
			}
			parts = append(parts, s)
		case !e.IsDir() && yamlName(e):
			parts = append(parts, ix.blob(fsys, p, objectHash(e), e))
		}
	}
	s := union(parts)
	s.used = ix.gen
	if hash != "" {
		ix.trees[hash] = s
		ix.dirty = true
	}
	return s, nil
}

// blob returns a file's summary: cached by hash, or read and summarised.
func (ix *Index) blob(fsys fs.FS, name, hash string, e fs.DirEntry) *entrySummary {
	if s, ok := ix.blobs[hash]; ok && hash != "" {
		return s
	}
	s := intern(summarize(fsys, name, entrySize(e), ix.limits))
	if hash != "" {
		ix.blobs[hash] = s
		ix.dirty = true
		if ix.progress != nil && len(ix.blobs)%5000 == 0 {
			ix.progress(len(ix.blobs))
		}
	}
	return s
}

// summarize reads one file: the names of its workload documents (also inside kind: List), the
// repositories their containers run, and its marker ids. It decodes one document at a time and
// keeps none. Each file is held to an event's limits on its own (building the index reads every
// file once, so the per-event totals cannot apply); a file no event could read is opaque.
func summarize(fsys fs.FS, name string, size int64, limits Budget) *entrySummary {
	b := &limits // a copy: each file is measured against the limits alone
	if size > b.maxFile() {
		return &entrySummary{Opaque: true}
	}
	data, err := b.read(fsys, name)
	if err != nil {
		return &entrySummary{Opaque: true}
	}
	var s entrySummary
	// The per-document budget holds here too: a dense file is never decoded whole.
	_, err = b.decode(name, data, func(doc *yaml.Node) bool {
		for _, root := range rootMappings([]*yaml.Node{doc}) {
			for _, d := range withListItems(root) {
				kind, docName, _ := meta(d)
				k, ok := workload.Lookup(kind)
				if !ok {
					continue
				}
				if docName != "" {
					s.Names = append(s.Names, docName)
				}
				for _, c := range podContainers(d, k) {
					if ref, err := imageref.Parse(c.image.Value); err == nil {
						s.Repos = append(s.Repos, path.Base(ref.Path()))
					}
				}
			}
		}
		walkScalars(doc, func(n *yaml.Node) {
			if id, _, ok := parseMarker(n.LineComment); ok {
				s.Markers = append(s.Markers, id)
			}
		})
		return false
	})
	if err != nil {
		return &entrySummary{Opaque: true}
	}
	s.Names, s.Repos, s.Markers = sortedSet(s.Names), sortedSet(s.Repos), sortedSet(s.Markers)
	return &s
}

func union(parts []*entrySummary) *entrySummary {
	var s entrySummary
	for _, p := range parts {
		s.Opaque = s.Opaque || p.Opaque
		s.Names = append(s.Names, p.Names...)
		s.Repos = append(s.Repos, p.Repos...)
		s.Markers = append(s.Markers, p.Markers...)
	}
	s.Names, s.Repos, s.Markers = sortedSet(s.Names), sortedSet(s.Repos), sortedSet(s.Markers)
	return &s
}

func sortedSet(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	sort.Strings(v)
	return slices.Compact(v)
}
