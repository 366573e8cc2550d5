package manifests

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/imageref"
)

// markerKeys are the setter comments understood: imagehook's own, and Flux's and Fleet's, so that
// repositories annotated for those tools work unchanged.
var markerKeys = []string{"$imagehook", "$imagepolicy", "$imagescan"}

// parseMarker reads a line comment such as # {"$imagehook": "website:tag"} into the marker's id
// and the part of the image it stands for ("" for the whole reference, or tag, name, digest).
func parseMarker(comment string) (id, field string, ok bool) {
	_, id, field, ok = readMarker(comment)
	return id, field, ok
}

// readMarker is parseMarker that also names the marker's key ($imagehook, $imagepolicy,
// $imagescan): the key decides what a digest marker holds.
func readMarker(comment string) (key, id, field string, ok bool) {
	c := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(comment), "#"))
	if !strings.HasPrefix(c, "{") {
		return "", "", "", false
	}
	var m map[string]string
	if json.Unmarshal([]byte(c), &m) != nil {
		return "", "", "", false
	}
	for _, k := range markerKeys {
		if v, found := m[k]; found {
			if i := strings.LastIndexByte(v, ':'); i >= 0 {
				switch v[i+1:] {
				case "tag", "name", "digest":
					return k, v[:i], v[i+1:], true
				}
			}
			return k, v, "", true
		}
	}
	return "", "", "", false
}

// Marked is one scalar a marker comment names, as found in a file.
type Marked struct {
	File string
	Line int
	// Key is the marker's key ($imagehook, $imagepolicy or $imagescan), ID its id, and Field the
	// part of the image the value holds: "" (the whole reference), tag, name or digest.
	Key, ID, Field string
	Value          string
}

// Markers lists the marked scalars under dir, of id or (id "") of every id, in path and line order.
// Files that were not read are returned beside them, never skipped silently.
func Markers(fsys fs.FS, dir, id string, opts Options) ([]Marked, []NotRead, error) {
	dir, err := cleanDir(dir)
	if err != nil {
		return nil, nil, err
	}
	needles := [][]byte{[]byte(`"$image`)}
	if id != "" {
		needles = append(needles, []byte(id))
	} else {
		opts.Index = nil // the index answers for one id at a time
	}
	match := func(n *yaml.Node) (Marked, bool) {
		key, mid, field, ok := readMarker(n.LineComment)
		if !ok || id != "" && mid != id {
			return Marked{}, false
		}
		return Marked{Line: n.Line, Key: key, ID: mid, Field: field, Value: n.Value}, true
	}
	keep := func(doc *yaml.Node) bool {
		found := false
		walkScalars(doc, func(n *yaml.Node) { _, ok := match(n); found = found || ok })
		return found
	}
	sc, err := scan(fsys, dir, opts, query{marker: id}, keep, needles...)
	if err != nil {
		return nil, sc.notRead, err
	}
	var out []Marked
	for _, f := range sc.files {
		for _, doc := range sc.docs[f] {
			walkScalars(doc, func(n *yaml.Node) {
				if m, ok := match(n); ok {
					m.File = f
					out = append(out, m)
				}
			})
		}
	}
	return out, sc.notRead, nil
}

// SetMarkers rewrites every scalar under dir whose line comment is a marker for id, whatever the
// document: plain values files, CRDs, anything YAML.
func SetMarkers(fsys fs.FS, dir, id string, pushed imageref.Ref, opts Options) (Result, error) {
	var res Result
	dir, err := cleanDir(dir)
	if err != nil {
		return res, err
	}
	sc, err := scan(fsys, dir, opts, query{marker: id}, keepMarked(id), []byte(`"$image`), []byte(id))
	res.NotRead, res.Warnings = sc.notRead, warnings(sc.notRead)
	if err != nil {
		return res, err
	}
	edits := map[string][]edit{}
	for _, f := range sc.files {
		for _, doc := range sc.docs[f] {
			var walkErr error
			walkScalars(doc, func(n *yaml.Node) {
				key, mid, field, ok := readMarker(n.LineComment)
				if !ok || mid != id || walkErr != nil {
					return
				}
				val, err := markerValue(n.Value, key, field, pushed, opts)
				if err != nil {
					walkErr = fmt.Errorf("%s:%d: %w", f, n.Line, err)
					return
				}
				kind, name, _ := meta(rootMapping(doc))
				res.Changes = append(res.Changes, Change{File: f, Place: PlaceMarker, Kind: kind, Name: name, Container: "marker " + id, Line: n.Line, Old: n.Value, New: val})
				if val != n.Value {
					edits[f] = append(edits[f], edit{node: n, value: val})
				}
			})
			if walkErr != nil {
				return Result{}, walkErr
			}
		}
	}
	if len(res.Changes) == 0 {
		return res, notFound(fmt.Sprintf("marker %q under %s", id, dir), sc.notRead)
	}
	spliced, err := spliceFiles(sc.contents, edits)
	if err != nil {
		return Result{}, err
	}
	res.Files = spliced
	return res, nil
}

// keepMarked keeps the documents with a scalar marked for id.
func keepMarked(id string) func(*yaml.Node) bool {
	return func(doc *yaml.Node) bool {
		marked := false
		walkScalars(doc, func(n *yaml.Node) {
			if mid, _, ok := parseMarker(n.LineComment); ok && mid == id {
				marked = true
			}
		})
		return marked
	}
}

func rootMapping(doc *yaml.Node) *yaml.Node {
	if len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return doc
}

func walkScalars(n *yaml.Node, fn func(*yaml.Node)) {
	if n.Kind == yaml.ScalarNode {
		fn(n)
	}
	for _, c := range n.Content {
		walkScalars(c, fn)
	}
}

// markerValue computes the new value of a marked scalar.
func markerValue(cur, key, field string, pushed imageref.Ref, opts Options) (string, error) {
	if key == "$imagescan" && field == "digest" && !imageref.ValidDigest(cur) {
		// Fleet's imagescan writes the whole reference, repository:tag@digest, where its :digest
		// marker stands (Flux's writes the digest alone, and so does a $imagescan marker whose
		// value is a bare digest).
		ref, err := imageref.Parse(cur)
		if err != nil {
			return "", fmt.Errorf("marked value: %w", err)
		}
		rules := opts.rules()
		rules.Pin = imageref.PinDigest
		return imageref.NewValue(ref, pushed, rules)
	}
	switch field {
	case "":
		ref, err := imageref.Parse(cur)
		if err != nil {
			return "", fmt.Errorf("marked value: %w", err)
		}
		return NewValue(ref, pushed, opts)
	case "tag":
		if pushed.Tag == "" {
			return "", fmt.Errorf("%w: the push of %s has no tag", ErrUnsafe, pushed)
		}
		if err := imageref.CheckDowngrade(cur, pushed.Tag, opts.rules()); err != nil {
			return "", err
		}
		return pushed.Tag, nil
	case "digest":
		if pushed.Digest == "" {
			return "", fmt.Errorf("%w: the push of %s carries no digest", ErrUnsafe, pushed)
		}
		return pushed.Digest, nil
	default: // name
		ref, err := imageref.Parse(cur)
		if err != nil {
			return "", fmt.Errorf("marked repository: %w", err)
		}
		switch {
		case ref.SameRepository(pushed):
			return ref.Repo, nil
		case ref.Path() != pushed.Path():
			return "", fmt.Errorf("%w: pushed %s, marker holds %s", ErrOtherRepository, pushed.Repo, ref.Repo)
		case !opts.WriteHost:
			return ref.Repo, nil
		}
		return pushed.Repo, nil
	}
}
