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

// currentMarked joins the marked scalars of an id into one reference.
func currentMarked(fsys fs.FS, p Place, opts Options) (string, error) {
	marked, notRead, err := Markers(fsys, p.Path, p.Marker, opts)
	if err != nil {
		return "", err
	}
	var name, tag, digest string
	for _, m := range marked {
		switch m.Field {
		case "":
			if _, err := imageref.Parse(m.Value); err == nil {
				return m.Value, nil
			}
		case "name":
			name = first(name, m.Value)
		case "tag":
			tag = first(tag, m.Value)
		case "digest":
			digest = first(digest, m.Value)
		}
	}
	if name == "" {
		what := fmt.Sprintf("marker %q under %s: no marked value names the image", p.Marker, p.Path)
		if len(notRead) > 0 {
			return "", &FilesNotReadError{What: what, Files: notRead}
		}
		return "", fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	ref := name
	if tag != "" {
		ref += ":" + tag
	}
	if digest != "" {
		ref += "@" + digest
	}
	return ref, nil
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
