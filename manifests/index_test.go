package manifests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
)

// hashedFS is a MapFS whose directory entries carry content hashes, as a git tree's do: a
// directory's hash covers everything under it. It counts file reads.
type hashedFS struct {
	fstest.MapFS
	reads *atomic.Int64
}

type hashedEntry struct {
	fs.DirEntry
	hash string
}

func (e hashedEntry) ObjectHash() string { return e.hash }

func (h hashedFS) Open(name string) (fs.File, error) {
	if st, err := fs.Stat(h.MapFS, name); err == nil && !st.IsDir() {
		h.reads.Add(1)
	}
	return h.MapFS.Open(name)
}

func (h hashedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(h.MapFS, name)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(entries))
	for i, e := range entries {
		out[i] = hashedEntry{e, h.hash(path.Join(name, e.Name()))}
	}
	return out, nil
}

func (h hashedFS) hash(p string) string {
	sum := sha256.New()
	var names []string
	for n := range h.MapFS {
		if n == p || strings.HasPrefix(n, p+"/") || p == "." {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(sum, "%s\x00%s\x00", n, h.MapFS[n].Data)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

func deploymentDoc(name, image string) string {
	return fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: %s\n", name, image)
}

func monorepo(n int) fstest.MapFS {
	m := fstest.MapFS{}
	for i := range n {
		m[fmt.Sprintf("teams/t%02d/app-%03d/deploy.yaml", i%10, i)] = &fstest.MapFile{Data: []byte(deploymentDoc(fmt.Sprintf("app-%03d", i), fmt.Sprintf("acme/app-%03d:1.0", i)))}
		m[fmt.Sprintf("teams/t%02d/app-%03d/config.yaml", i%10, i)] = &fstest.MapFile{Data: []byte("kind: ConfigMap\ndata: {k: v}\n")}
	}
	return m
}

// TestIndexReadsOnlyCandidates: with the index, a lookup reads the files that can hold the target,
// a second lookup of the same tree reads only those again, and the result is the one without index.
func TestIndexReadsOnlyCandidates(t *testing.T) {
	m := monorepo(200)
	var reads atomic.Int64
	fsys := hashedFS{m, &reads}
	ix := OpenIndex("", Budget{})
	target := Selector{"Deployment", "app-042", "", "app"}
	res, err := RewriteSelected(fsys, ".", target, mustRef(t, "acme/app-042:2.0"), Options{Index: ix})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := RewriteSelected(m, ".", target, mustRef(t, "acme/app-042:2.0"), Options{})
	if err != nil || fmt.Sprint(plain.Changes) != fmt.Sprint(res.Changes) || len(res.Files) != 1 {
		t.Fatalf("with index %v, without %v %v", res.Changes, plain.Changes, err)
	}
	first := reads.Load()
	reads.Store(0)
	if _, err := RewriteSelected(fsys, ".", Selector{"Deployment", "app-007", "", "app"}, mustRef(t, "acme/app-007:2.0"), Options{Index: ix}); err != nil {
		t.Fatal(err)
	}
	if got := reads.Load(); got > 3 {
		t.Errorf("second lookup read %d files (first built the index with %d), want the candidate only", got, first)
	}
}

// TestIndexPersistsAndRebuilds: the index survives a restart, and a corrupt or old-format file is
// rebuilt, never trusted.
func TestIndexPersistsAndRebuilds(t *testing.T) {
	m := monorepo(50)
	file := filepath.Join(t.TempDir(), "apps.index")
	var reads atomic.Int64
	fsys := hashedFS{m, &reads}
	ix := OpenIndex(file, Budget{})
	if _, err := RewriteSelected(fsys, ".", Selector{"Deployment", "app-001", "", "app"}, mustRef(t, "acme/app-001:2.0"), Options{Index: ix}); err != nil {
		t.Fatal(err)
	}
	if err := ix.Save(true); err != nil {
		t.Fatal(err)
	}
	reads.Store(0)
	again := OpenIndex(file, Budget{})
	if files, _ := again.Len(); files < 100 {
		t.Fatalf("reloaded index knows %d files", files)
	}
	if _, err := RewriteSelected(fsys, ".", Selector{"Deployment", "app-002", "", "app"}, mustRef(t, "acme/app-002:2.0"), Options{Index: again}); err != nil {
		t.Fatal(err)
	}
	if got := reads.Load(); got > 3 {
		t.Errorf("after a restart the lookup read %d files, want no re-scan", got)
	}
	for _, garbage := range [][]byte{[]byte("not gob"), {}} {
		if err := os.WriteFile(file, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		ix := OpenIndex(file, Budget{})
		if files, _ := ix.Len(); files != 0 {
			t.Errorf("a corrupt index was trusted: %d files", files)
		}
		if _, err := RewriteSelected(fsys, ".", Selector{"Deployment", "app-003", "", "app"}, mustRef(t, "acme/app-003:2.0"), Options{Index: ix}); err != nil {
			t.Errorf("rebuilt index: %v", err)
		}
	}
}

// TestIndexFollowsChangesBehindItsBack: another writer renames the Deployment, moves it to
// another file, deletes it, or adds a second one with the same name; the index finds the right
// file each time, or reports ambiguity, as a full scan would.
func TestIndexFollowsChangesBehindItsBack(t *testing.T) {
	ix := OpenIndex("", Budget{})
	var reads atomic.Int64
	lookup := func(m fstest.MapFS) (Result, error) {
		return RewriteSelected(hashedFS{m, &reads}, ".", Selector{"Deployment", "web", "", "app"}, mustRef(t, "acme/web:2.0"), Options{Index: ix})
	}
	m := monorepo(20)
	m["apps/web/deploy.yaml"] = &fstest.MapFile{Data: []byte(deploymentDoc("web", "acme/web:1.0"))}
	if res, err := lookup(m); err != nil || res.Files["apps/web/deploy.yaml"] == nil {
		t.Fatalf("initial: %v %v", res.Files, err)
	}
	m["apps/web/deploy.yaml"] = &fstest.MapFile{Data: []byte(deploymentDoc("web-renamed", "acme/web:1.0"))}
	if _, err := lookup(m); !errors.Is(err, ErrNotFound) {
		t.Errorf("renamed: %v, want not found", err)
	}
	delete(m, "apps/web/deploy.yaml")
	m["other/place/web.yaml"] = &fstest.MapFile{Data: []byte(deploymentDoc("web", "acme/web:1.0"))}
	if res, err := lookup(m); err != nil || res.Files["other/place/web.yaml"] == nil {
		t.Errorf("moved: %v %v", res.Files, err)
	}
	delete(m, "other/place/web.yaml")
	if _, err := lookup(m); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted: %v, want not found", err)
	}
	m["a/web.yaml"] = &fstest.MapFile{Data: []byte(deploymentDoc("web", "acme/web:1.0"))}
	m["b/web.yaml"] = &fstest.MapFile{Data: []byte(deploymentDoc("web", "acme/web:1.0"))}
	if _, err := lookup(m); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("two with the same name: %v, want ambiguous", err)
	}
}

// TestIndexNeverDecodesWhatAnEventCouldNot: a file with a document past its budget is not decoded
// to be indexed; it stays a candidate, so the event names it not read, as without the index.
func TestIndexNeverDecodesWhatAnEventCouldNot(t *testing.T) {
	m := monorepo(5)
	m["teams/dense.yaml"] = &fstest.MapFile{Data: []byte("# app-001\nlist: [" + strings.Repeat("1,", 60_000) + "1]\n")}
	var reads atomic.Int64
	limits := Budget{MaxDocumentNodes: 50_000}
	res, err := RewriteSelected(hashedFS{m, &reads}, ".", Selector{"Deployment", "app-001", "", "app"}, mustRef(t, "acme/app-001:2.0"),
		Options{Index: OpenIndex("", limits), Budget: &limits})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Warnings, "\n"); !strings.Contains(got, "skipped teams/dense.yaml: 117 KiB; its document 1 decodes to over 50000 YAML nodes") {
		t.Errorf("warnings = %q, want the dense file named", got)
	}
}

// TestIndexFileChunks: an index bigger than one chunk is written a chunk at a time and read back
// whole (summaries, the shared empty one, directories); a file cut short after some chunks is not
// trusted in part.
func TestIndexFileChunks(t *testing.T) {
	blobs, trees := map[string]*entrySummary{}, map[string]*entrySummary{}
	for i := range 3*indexChunkEntries + 17 {
		s := nothing
		if i%3 == 0 {
			s = &entrySummary{Names: []string{fmt.Sprintf("app-%d", i)}, Repos: []string{"app"}}
		}
		if i%1000 == 1 {
			s = &entrySummary{Opaque: true}
		}
		blobs[fmt.Sprintf("%040x", i)] = s
	}
	for i := range indexChunkEntries + 5 {
		trees[fmt.Sprintf("t%039x", i)] = &entrySummary{Repos: []string{"app"}}
	}
	trees["empty"] = &entrySummary{}
	var buf bytes.Buffer
	if err := writeIndex(&buf, blobs, trees); err != nil {
		t.Fatal(err)
	}
	gotBlobs, gotTrees, ok := readIndex(bytes.NewReader(buf.Bytes()))
	if !ok {
		t.Fatal("a whole index file was not read")
	}
	if len(gotBlobs) != len(blobs) || len(gotTrees) != len(trees) {
		t.Fatalf("read %d files and %d directories, wrote %d and %d", len(gotBlobs), len(gotTrees), len(blobs), len(trees))
	}
	for h, s := range blobs {
		g := gotBlobs[h]
		if g == nil || !slices.Equal(g.Names, s.Names) || !slices.Equal(g.Repos, s.Repos) || g.Opaque != s.Opaque {
			t.Fatalf("file %s: read %+v, wrote %+v", h, g, s)
		}
		if s == nothing && g != nothing {
			t.Fatalf("file %s: an empty summary was not shared", h)
		}
	}
	if g := gotTrees["empty"]; g == nil || g.Opaque || len(g.Repos) != 0 {
		t.Fatalf("empty directory summary read as %+v", g)
	}
	if _, _, ok := readIndex(bytes.NewReader(buf.Bytes()[:buf.Len()/2])); ok {
		t.Error("a file cut in half was trusted")
	}
}
