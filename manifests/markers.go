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
	c := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(comment), "#"))
	if !strings.HasPrefix(c, "{") {
		return "", "", false
	}
	var m map[string]string
	if json.Unmarshal([]byte(c), &m) != nil {
		return "", "", false
	}
	for _, k := range markerKeys {
		if v, found := m[k]; found {
			if i := strings.LastIndexByte(v, ':'); i >= 0 {
				switch v[i+1:] {
				case "tag", "name", "digest":
					return v[:i], v[i+1:], true
				}
			}
			return v, "", true
		}
	}
	return "", "", false
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
				mid, field, ok := parseMarker(n.LineComment)
				if !ok || mid != id || walkErr != nil {
					return
				}
				val, err := markerValue(n.Value, field, pushed, opts)
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
func markerValue(cur, field string, pushed imageref.Ref, opts Options) (string, error) {
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
