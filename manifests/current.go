package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/imagehook/imagehook/imageref"
)

// CurrentImage returns the image a place holds now, as one reference, whatever the kind of place:
// a workload container's image, a Helm values file's reference (its registry, repository, tag and
// digest keys joined, as the rewrite reads them), or the marked scalars for an id (the first whole
// reference, else the name, tag and digest fields joined). Reconcile asks the registry about it, the
// status page shows it, and promotion compares it with what imagehook wrote to see a person's change.
func CurrentImage(fsys fs.FS, p Place, opts Options) (string, error) {
	switch {
	case p.Marker != "":
		return currentMarked(fsys, p, opts)
	case p.Values != nil:
		ve, err := readValues(fsys, p.Path, *p.Values, opts)
		if err != nil {
			return "", err
		}
		r, err := ve.reference(*p.Values)
		if err != nil {
			return "", err
		}
		return r.full, nil
	}
	return Current(fsys, p.Path, p.Workload, opts)
}

// MarkedImage is what the marked scalars of an id hold now, combined by the one rule CurrentImage
// applies, for a caller that can do with a tag alone (reconcile, when its config names the
// repository).
type MarkedImage struct {
	// Ref is the whole reference: the first marked whole reference, else the name, tag and digest
	// fields joined; "" when no marked value names the image (a place that marks only a tag).
	Ref string
	// Tag is the tag the place holds: Ref's, or the first tag field's when no value names the image.
	Tag string
}

// CurrentMarked reads what the marked scalars of p.Marker under p.Path hold now. It fails only
// when no scalar is marked for the id (or the files that could hold one were not read).
func CurrentMarked(fsys fs.FS, p Place, opts Options) (MarkedImage, error) {
	m, _, err := readMarked(fsys, p, opts)
	return m, err
}

// currentMarked is CurrentMarked for CurrentImage: a place that names no image is an error.
func currentMarked(fsys fs.FS, p Place, opts Options) (string, error) {
	m, notRead, err := readMarked(fsys, p, opts)
	if err != nil {
		return "", err
	}
	if m.Ref == "" {
		return "", notFound(fmt.Sprintf("marker %q under %s: no marked value names the image", p.Marker, p.Path), notRead)
	}
	return m.Ref, nil
}

// readMarked combines the marked scalars of an id, in path and line order, into one image:
//   - the first whole reference wins: a whole-reference marker's value, or a $imagescan :digest
//     marker's that is not a bare digest (Fleet writes repository:tag@digest there, as SetMarkers
//     reads it). A value that does not parse, or is a bare digest, names no image and is passed by
//     (the rewrite refuses it with its line);
//   - else the first name, tag and digest fields are joined, name:tag@digest;
//   - markers that disagree (a person edited one of them) are not reconciled here: the first of
//     each part counts, and a whole reference counts before any part.
func readMarked(fsys fs.FS, p Place, opts Options) (MarkedImage, []NotRead, error) {
	marked, notRead, err := Markers(fsys, p.Path, p.Marker, opts)
	if err != nil {
		return MarkedImage{}, notRead, err
	}
	if len(marked) == 0 {
		return MarkedImage{}, notRead, notFound(fmt.Sprintf("marker %q under %s", p.Marker, p.Path), notRead)
	}
	var name, tag, digest string
	for _, m := range marked {
		switch {
		case m.Field == "" || m.Field == "digest" && m.Key == "$imagescan" && !imageref.ValidDigest(m.Value):
			if imageref.ValidDigest(m.Value) {
				continue
			}
			if ref, err := imageref.Parse(m.Value); err == nil {
				return MarkedImage{Ref: m.Value, Tag: ref.Tag}, notRead, nil
			}
		case m.Field == "name":
			name = first(name, m.Value)
		case m.Field == "tag":
			tag = first(tag, m.Value)
		case m.Field == "digest":
			digest = first(digest, m.Value)
		}
	}
	if name == "" {
		return MarkedImage{Tag: tag}, notRead, nil
	}
	ref := name
	if tag != "" {
		ref += ":" + tag
	}
	if digest != "" {
		ref += "@" + digest
	}
	return MarkedImage{Ref: ref, Tag: tag}, notRead, nil
}

func first(have, v string) string {
	if have != "" {
		return have
	}
	return v
}

// readValues reads and decodes a Helm values file under dir for v.
func readValues(fsys fs.FS, dir string, v Values, opts Options) (*valuesEdit, error) {
	file := path.Clean(path.Join(strings.TrimPrefix(dir, "/"), v.File))
	if !fs.ValidPath(file) || v.File == "" {
		return nil, fmt.Errorf("values file %q: must be a file inside the repository", v.File)
	}
	data, err := opts.Budget.read(fsys, file)
	var nr NotRead
	if errors.As(err, &nr) && !nr.Malformed() {
		return &valuesEdit{file: file, res: Result{NotRead: []NotRead{nr}, Warnings: warnings([]NotRead{nr})}}, notFound("values file "+file, []NotRead{nr})
	}
	if err != nil {
		return nil, err
	}
	docs, err := opts.Budget.decode(file, data, keepAll)
	if errors.As(err, &nr) && !nr.Malformed() {
		return &valuesEdit{file: file, res: Result{NotRead: []NotRead{nr}, Warnings: warnings([]NotRead{nr})}}, notFound("values file "+file, []NotRead{nr})
	}
	if err != nil || len(docs) == 0 || len(docs[0].Content) == 0 {
		return nil, fmt.Errorf("%s: not a YAML values file: %v", file, err)
	}
	return &valuesEdit{file: file, data: data, root: docs[0].Content[0]}, nil
}
