package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/workload"
)

// Options tunes Rewrite and RewriteSelected.
type Options struct {
	Pin Pin
	// WriteHost writes the pushed image's registry host where the manifest names the same
	// repository path on another host (the push asked for that host explicitly).
	WriteHost bool
	// NoDowngrade refuses a semantic version lower than the current one.
	NoDowngrade bool
	// RegistryAliases groups registry hosts that serve the same repositories (imageref.Rules).
	RegistryAliases [][]string
	// Budget bounds what the call reads and parses (nil: the defaults). Share one across the calls
	// made for one event.
	Budget *Budget
	// Index, when set and the file system lists object hashes (a git tree), narrows the files read
	// to those that can hold the target.
	Index *Index
}

// rules are the image-reference rules of the options.
func (o Options) rules() imageref.Rules {
	return imageref.Rules{Pin: o.Pin, WriteHost: o.WriteHost, NoDowngrade: o.NoDowngrade, RegistryAliases: o.RegistryAliases}
}

// found is one container image scalar in one document.
type found struct {
	file      string
	kind      string
	name      string
	namespace string
	container string
	doc       *yaml.Node
	node      *yaml.Node
}

// RewriteSelected finds target under dir in fsys and computes the rewrite that makes its image pushed.
// Nothing is written: the caller stores Result.Files (in a working tree or a git tree).
func RewriteSelected(fsys fs.FS, dir string, target Selector, pushed imageref.Ref, opts Options) (Result, error) {
	var res Result
	dir, err := cleanDir(dir)
	if err != nil {
		return res, err
	}
	if _, ok := workload.Lookup(target.Kind); target.Name != "" && !ok {
		return res, fmt.Errorf("kind %q: not a workload kind (want %s)", target.Kind, workload.Names(false))
	}
	// An overlay names the image in its kustomization: that entry, not the base's workload file
	// (which may lie outside the target's path), is what decides the running image.
	kres, found, err := setKustomizeImage(fsys, dir, pushed, opts)
	if found || err != nil {
		return kres, err
	}
	hits, sc, err := locate(fsys, dir, target, pushed, opts, kres.NotRead...)
	res.NotRead, res.Warnings = sc.notRead, warnings(sc.notRead)
	if err != nil {
		return res, err
	}
	edits := map[string][]edit{}
	for _, h := range hits {
		if h.node.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return res, fmt.Errorf("%s:%d: %w: image is a block scalar", h.file, h.node.Line, ErrUnsafe)
		}
		cur, err := imageref.Parse(h.node.Value)
		if err != nil {
			return res, fmt.Errorf("%s:%d: current image: %w", h.file, h.node.Line, err)
		}
		val, err := NewValue(cur, pushed, opts)
		if err != nil {
			return res, fmt.Errorf("%s:%d: %w", h.file, h.node.Line, err)
		}
		res.Changes = append(res.Changes, Change{File: h.file, Kind: h.kind, Name: h.name, Namespace: h.namespace,
			Container: h.container, Line: h.node.Line, Old: h.node.Value, New: val})
		if val != h.node.Value {
			edits[h.file] = append(edits[h.file], edit{node: h.node, value: val})
		}
	}
	spliced, err := spliceFiles(sc.contents, edits)
	if err != nil {
		return Result{}, err
	}
	res.Files = spliced
	return res, nil
}

// warnings are the lines a person reads for the files not read.
func warnings(notRead []NotRead) []string {
	if len(notRead) == 0 {
		return nil
	}
	out := make([]string, len(notRead))
	for i, n := range notRead {
		out[i] = n.String()
	}
	return out
}

// locate finds the containers of target under dir: every one, in one workload document.
// notRead are files already known not to be read (a kustomization), named with the scan's.
func locate(fsys fs.FS, dir string, target Selector, pushed imageref.Ref, opts Options, notRead ...NotRead) ([]found, scanned, error) {
	needle := []byte(target.Name)
	if target.Name == "" {
		needle = []byte(path.Base(pushed.Path()))
	}
	q := query{name: target.Name}
	if target.Name == "" {
		q = query{repo: string(needle)}
	}
	sc, err := scan(fsys, dir, opts, q, keepWorkloads(target, pushed), needle)
	sc.notRead = append(notRead, sc.notRead...)
	if err != nil {
		return nil, sc, err
	}
	ns := namespaces{fsys: fsys, root: dir, cache: map[string]string{}, budget: opts.Budget}
	var hits []found
	for _, f := range sc.files {
		for _, doc := range rootMappings(sc.docs[f]) {
			for _, d := range withListItems(doc) {
				hits = append(hits, containersIn(f, d, target, pushed, &ns)...)
			}
		}
	}
	sc.notRead = append(sc.notRead, ns.notRead...)
	sc.notRead = sortNotRead(sc.notRead)
	if len(hits) == 0 {
		return nil, sc, notFound(fmt.Sprintf("%s under %s", target, dir), sc.notRead)
	}
	if target.Name != "" {
		if err := checkOneWorkload(hits, target); err != nil {
			return nil, sc, err
		}
	}
	return hits, sc, nil
}

// Current returns the image a workload container runs in the manifests under dir (reconcile asks
// the registry for newer tags of it). The target must name the workload and the container.
func Current(fsys fs.FS, dir string, target Selector, opts Options) (string, error) {
	if target.Name == "" || target.Container == "" {
		return "", fmt.Errorf("%s: name the workload and the container", target)
	}
	dir, err := cleanDir(dir)
	if err != nil {
		return "", err
	}
	hits, _, err := locate(fsys, dir, target, imageref.Ref{}, opts)
	if err != nil {
		return "", err
	}
	return hits[0].node.Value, nil
}

// checkOneWorkload refuses a target that matches containers of two different workload documents.
func checkOneWorkload(hits []found, target Selector) error {
	first := hits[0]
	for _, h := range hits[1:] {
		if h.doc != first.doc {
			return fmt.Errorf("%w: %s matches workloads in %s and %s; set the target's namespace or path", ErrAmbiguous, target, first.file, h.file)
		}
	}
	return nil
}

// keepWorkloads keeps the documents that can hold target: a workload document (or a kind: List
// with one) of the target's kind and name, or, when the target names none, one with a container
// that runs the pushed repository. The others (the thousands of CRDs of a vendored install
// bundle, say) are dropped as decoded.
func keepWorkloads(target Selector, pushed imageref.Ref) func(*yaml.Node) bool {
	return func(doc *yaml.Node) bool {
		for _, d := range withListItems(rootMappings([]*yaml.Node{doc})[0]) {
			kind, name, _ := meta(d)
			k, ok := workload.Lookup(kind)
			if !ok {
				continue
			}
			if target.Name != "" {
				if strings.EqualFold(kind, target.Kind) && name == target.Name {
					return true
				}
				continue
			}
			for _, c := range podContainers(d, k) {
				if cur, err := imageref.Parse(c.image.Value); err == nil && cur.SameRepository(pushed) {
					return true
				}
			}
		}
		return false
	}
}

// sortNotRead orders files not read by path, each named once.
func sortNotRead(n []NotRead) []NotRead {
	sort.SliceStable(n, func(i, j int) bool { return n[i].File < n[j].File })
	return slices.CompactFunc(n, func(a, b NotRead) bool { return a.File == b.File })
}

// yamlFiles lists the YAML files under dir, or dir itself when it names a file.
func yamlFiles(fsys fs.FS, dir string) ([]candidate, error) {
	if st, err := fs.Stat(fsys, dir); err == nil && st.Mode().IsRegular() {
		return []candidate{{dir, st.Size()}}, nil
	}
	var files []candidate
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // an unreadable subdirectory does not hide the target elsewhere
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		// Regular files only: a symlink could point outside the repository.
		if !d.Type().IsRegular() {
			return nil
		}
		// Every file name kustomize accepts is YAML, "Kustomization" included.
		if ext := path.Ext(p); ext == ".yaml" || ext == ".yml" || d.Name() == "Kustomization" {
			files = append(files, candidate{p, entrySize(d)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", dir, err)
	}
	return files, nil
}

// rootMappings returns each decoded document's root mapping (an empty node for a document that is
// not a mapping, so positions still line up).
func rootMappings(all []*yaml.Node) []*yaml.Node {
	docs := make([]*yaml.Node, len(all))
	for i, n := range all {
		docs[i] = &yaml.Node{}
		if len(n.Content) == 1 && n.Content[0].Kind == yaml.MappingNode {
			docs[i] = n.Content[0]
		}
	}
	return docs
}

// withListItems returns a document, or the items of a kind: List (kubectl applies each item): the
// item nodes are part of the file's own decoded tree, so their positions stay absolute.
func withListItems(doc *yaml.Node) []*yaml.Node {
	if kind, _, _ := meta(doc); kind == "List" {
		return elements(doc, "items")
	}
	return []*yaml.Node{doc}
}

// cleanDir normalises a target path and refuses one that leaves the repository.
func cleanDir(dir string) (string, error) {
	dir = path.Clean(strings.TrimPrefix(dir, "/"))
	if !fs.ValidPath(dir) {
		return "", fmt.Errorf("path %q: must stay inside the repository", dir)
	}
	return dir, nil
}

// scanned is what scan read: the files that hold documents to keep, in order, with their bytes and
// those documents, and the files it did not read.
type scanned struct {
	files    []string
	contents map[string][]byte
	docs     map[string][]*yaml.Node
	notRead  []NotRead
}

// scan reads the YAML files under dir that contain every needle and keeps, of each, the documents
// keep asks for. The cheap byte search comes first: in a big repository almost no file mentions the
// target, and decoding is what costs. A file is listed in scanned.files only when it holds a kept
// document; its bytes are held only then. Files are read smallest first (bySize) and reported in
// path order.
func scan(fsys fs.FS, dir string, opts Options, q query, keep func(*yaml.Node) bool, needles ...[]byte) (scanned, error) {
	sc := scanned{contents: map[string][]byte{}, docs: map[string][]*yaml.Node{}}
	budget := opts.Budget
	// The index, when there is one, names the files that can hold the target; the others are
	// not read at all.
	files, indexed, err := opts.Index.candidates(fsys, dir, q)
	if !indexed {
		files, err = yamlFiles(fsys, dir)
	}
	if err != nil {
		return sc, err
	}
	bySize(files)
next:
	for _, f := range files {
		if f.size > budget.maxFile() {
			// Not even opened: a git tree view reads a whole blob to open it.
			sc.notRead = append(sc.notRead, budget.tooBig(f.path, f.size))
			continue
		}
		data, err := budget.read(fsys, f.path)
		if err != nil {
			var nr NotRead
			if !errors.As(err, &nr) {
				nr = NotRead{File: f.path, Reason: event.ReasonFileUnreadable, Detail: fmt.Sprintf("cannot be read: %v", err)}
			}
			sc.notRead = append(sc.notRead, nr)
			continue
		}
		for _, n := range needles {
			if !bytes.Contains(data, n) {
				continue next
			}
		}
		docs, err := budget.decode(f.path, data, keep)
		if err != nil {
			var nr NotRead
			errors.As(err, &nr)
			sc.notRead = append(sc.notRead, nr)
			continue
		}
		if len(docs) == 0 {
			continue
		}
		sc.files = append(sc.files, f.path)
		sc.contents[f.path], sc.docs[f.path] = data, docs
	}
	sort.Strings(sc.files)
	sc.notRead = sortNotRead(sc.notRead)
	return sc, nil
}

func containersIn(file string, doc *yaml.Node, t Selector, pushed imageref.Ref, ns *namespaces) []found {
	kind, name, namespace := meta(doc)
	k, ok := workload.Lookup(kind)
	if !ok {
		return nil
	}
	if t.Name != "" {
		if !strings.EqualFold(kind, t.Kind) || name != t.Name {
			return nil
		}
	}
	if t.Namespace != "" && namespace != t.Namespace {
		// A document without a namespace gets the one its kustomization sets, or the one it is
		// applied to when none sets it.
		if namespace != "" {
			return nil
		}
		if k := ns.of(path.Dir(file)); k != "" && k != t.Namespace {
			return nil
		}
	}
	var out []found
	for _, c := range podContainers(doc, k) {
		if t.Container != "" && c.name != t.Container {
			continue
		}
		if t.Name == "" || t.Container == "" {
			// Without a container name only the containers running the pushed repository are
			// candidates: a sidecar with another image is never rewritten by accident.
			cur, err := imageref.Parse(c.image.Value)
			if err != nil || !cur.SameRepository(pushed) {
				continue
			}
		}
		out = append(out, found{file: file, kind: kind, name: name, namespace: namespace, container: c.name, doc: doc, node: c.image})
	}
	return out
}

// container is one container of a pod spec that has a scalar image.
type container struct {
	name  string
	image *yaml.Node
}

// podContainers lists a workload document's init containers and containers, the one walk that
// locating a target and indexing a file share.
func podContainers(doc *yaml.Node, k workload.Kind) []container {
	spec := lookupPath(doc, k.PodSpec...)
	var out []container
	for _, list := range []string{"initContainers", "containers"} {
		for _, c := range elements(spec, list) {
			if img := lookup(c, "image"); img != nil && img.Kind == yaml.ScalarNode {
				out = append(out, container{name: scalar(c, "name"), image: img})
			}
		}
	}
	return out
}

// namespaces resolves the namespace a kustomization sets for a directory, looking upwards to the
// target's root.
type namespaces struct {
	fsys   fs.FS
	root   string
	cache  map[string]string
	budget *Budget
	// notRead are the kustomizations that could not be read (their namespace is then unknown).
	notRead []NotRead
}

func (n *namespaces) of(dir string) string {
	if v, ok := n.cache[dir]; ok {
		return v
	}
	v := ""
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		p := path.Join(dir, name)
		data, err := n.budget.read(n.fsys, p)
		var nr NotRead
		if errors.As(err, &nr) {
			n.notRead = append(n.notRead, nr)
			break
		}
		if err != nil {
			continue
		}
		first := true
		docs, err := n.budget.decode(p, data, func(*yaml.Node) bool { keep := first; first = false; return keep })
		if errors.As(err, &nr) {
			n.notRead = append(n.notRead, nr)
		}
		if err == nil && len(docs) > 0 && len(docs[0].Content) == 1 {
			v = scalar(docs[0].Content[0], "namespace")
		}
		break
	}
	if v == "" && dir != n.root && dir != "." && strings.HasPrefix(dir, n.root) {
		v = n.of(path.Dir(dir))
	}
	n.cache[dir] = v
	return v
}
