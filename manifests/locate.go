package manifests

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/workload"
)

// Options tunes SetImage.
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

// SetImage finds target under dir in fsys and computes the rewrite that makes its image pushed.
// Nothing is written: the caller stores Result.Files (in a working tree or a git tree).
func SetImage(fsys fs.FS, dir string, target Target, pushed imageref.Ref, opts Options) (Result, error) {
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
	if kres, found, err := setKustomizeImage(fsys, dir, pushed, opts); found || err != nil {
		return kres, err
	}
	hits, sc, err := locate(fsys, dir, target, pushed, opts)
	res.Warnings = sc.warnings
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

// locate finds the containers of target under dir: every one, in one workload document.
func locate(fsys fs.FS, dir string, target Target, pushed imageref.Ref, opts Options) ([]found, scanned, error) {
	needle := []byte(target.Name)
	if target.Name == "" {
		needle = []byte(path.Base(pushed.Path()))
	}
	q := query{name: target.Name}
	if target.Name == "" {
		q = query{repo: string(needle)}
	}
	sc, err := scan(fsys, dir, opts, q, needle)
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
	if len(hits) == 0 {
		if len(sc.broken) > 0 {
			return nil, sc, fmt.Errorf("%s under %s: %w (files that do not parse: %s)", target, dir, ErrNotFound, strings.Join(sc.broken, ", "))
		}
		return nil, sc, fmt.Errorf("%s under %s: %w", target, dir, ErrNotFound)
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
func Current(fsys fs.FS, dir string, target Target, opts Options) (string, error) {
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
func checkOneWorkload(hits []found, target Target) error {
	first := hits[0]
	for _, h := range hits[1:] {
		if h.doc != first.doc {
			return fmt.Errorf("%w: %s matches workloads in %s and %s; set the target's namespace or path", ErrAmbiguous, target, first.file, h.file)
		}
	}
	return nil
}

// yamlFiles lists the YAML files under dir, or dir itself when it names a file.
func yamlFiles(fsys fs.FS, dir string) ([]string, error) {
	if st, err := fs.Stat(fsys, dir); err == nil && st.Mode().IsRegular() {
		return []string{dir}, nil
	}
	var files []string
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
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", dir, err)
	}
	sort.Strings(files)
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

// scanned is what scan read: the files that mention the needles, in order, with their bytes and
// documents, and what it skipped.
type scanned struct {
	files    []string
	contents map[string][]byte
	docs     map[string][]*yaml.Node
	warnings []string
	broken   []string
}

// scan reads the YAML files under dir and parses those that contain every needle. The cheap byte
// search comes first: in a big repository almost no file mentions the target, and parsing is what
// costs.
func scan(fsys fs.FS, dir string, opts Options, q query, needles ...[]byte) (scanned, error) {
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
next:
	for _, f := range files {
		data, err := budget.read(fsys, f)
		if err != nil {
			sc.warnings = append(sc.warnings, err.Error())
			continue
		}
		for _, n := range needles {
			if !bytes.Contains(data, n) {
				continue next
			}
		}
		docs, err := budget.parse(f, data)
		if err != nil {
			sc.broken = append(sc.broken, f)
			sc.warnings = append(sc.warnings, err.Error())
			continue
		}
		sc.files = append(sc.files, f)
		sc.contents[f], sc.docs[f] = data, docs
	}
	return sc, nil
}

func containersIn(file string, doc *yaml.Node, t Target, pushed imageref.Ref, ns *namespaces) []found {
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
}

func (n *namespaces) of(dir string) string {
	if v, ok := n.cache[dir]; ok {
		return v
	}
	v := ""
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		data, err := n.budget.read(n.fsys, path.Join(dir, name))
		if err != nil {
			continue
		}
		if docs, err := n.budget.parse(path.Join(dir, name), data); err == nil && len(docs) > 0 && len(docs[0].Content) == 1 {
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
