package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/imageref"
)

// Values names where a Helm values file keeps an image, as dotted key paths: either Image (one
// full reference), or Repository with Tag, and optionally Registry and Digest.
type Values struct {
	File       string
	Image      string
	Registry   string
	Repository string
	Tag        string
	Digest     string
}

// SetValues rewrites the image in a Helm values file.
func SetValues(fsys fs.FS, dir string, v Values, pushed imageref.Ref, opts Options) (Result, error) {
	file := path.Clean(path.Join(strings.TrimPrefix(dir, "/"), v.File))
	if !fs.ValidPath(file) || v.File == "" {
		return Result{}, fmt.Errorf("values file %q: must be a file inside the repository", v.File)
	}
	data, err := opts.Budget.read(fsys, file)
	var nr NotRead
	if errors.As(err, &nr) && !nr.Malformed() {
		return Result{NotRead: []NotRead{nr}, Warnings: warnings([]NotRead{nr})}, notFound("values file "+file, []NotRead{nr})
	}
	if err != nil {
		return Result{}, err
	}
	docs, err := opts.Budget.decode(file, data, keepAll)
	if errors.As(err, &nr) && !nr.Malformed() {
		return Result{NotRead: []NotRead{nr}, Warnings: warnings([]NotRead{nr})}, notFound("values file "+file, []NotRead{nr})
	}
	if err != nil || len(docs) == 0 || len(docs[0].Content) == 0 {
		return Result{}, fmt.Errorf("%s: not a YAML values file: %v", file, err)
	}
	ve := &valuesEdit{file: file, root: docs[0].Content[0]}
	if v.Image != "" {
		err = ve.image(v, pushed, opts)
	} else {
		err = ve.split(v, pushed, opts)
	}
	if err != nil {
		return ve.res, err
	}
	files, err := spliceFiles(map[string][]byte{file: data}, map[string][]edit{file: ve.edits})
	if err != nil {
		return Result{}, err
	}
	if len(ve.edits) == 0 {
		delete(files, file)
	}
	ve.res.Files = files
	return ve.res, nil
}

// valuesEdit collects the changes to one values file.
type valuesEdit struct {
	file  string
	root  *yaml.Node
	res   Result
	edits []edit
}

// node returns the scalar at a dotted key path.
func (ve *valuesEdit) node(p string) (*yaml.Node, error) {
	n := lookupPath(ve.root, strings.Split(p, ".")...)
	if n == nil {
		return nil, fmt.Errorf("%s: %w: no value at %s", ve.file, ErrNotFound, p)
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("%s: %s is not a scalar", ve.file, p)
	}
	return n, nil
}

func (ve *valuesEdit) change(what string, n *yaml.Node, val string) {
	ve.res.Changes = append(ve.res.Changes, Change{File: ve.file, Place: PlaceValues, Kind: "values", Name: what, Line: n.Line, Old: n.Value, New: val})
	if val != n.Value {
		ve.edits = append(ve.edits, edit{node: n, value: val})
	}
}

// image rewrites a whole reference kept at one key.
func (ve *valuesEdit) image(v Values, pushed imageref.Ref, opts Options) error {
	n, err := ve.node(v.Image)
	if err != nil {
		return err
	}
	cur, err := imageref.Parse(n.Value)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", ve.file, v.Image, err)
	}
	val, err := NewValue(cur, pushed, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", ve.file, err)
	}
	ve.change(v.Image, n, val)
	return nil
}

// split rewrites a reference kept in parts: registry, repository, tag and digest keys.
func (ve *valuesEdit) split(v Values, pushed imageref.Ref, opts Options) error {
	if v.Repository == "" || v.Tag == "" {
		return fmt.Errorf("values: set image, or repository and tag")
	}
	repoN, err := ve.node(v.Repository)
	if err != nil {
		return err
	}
	tagN, err := ve.node(v.Tag)
	if err != nil {
		return err
	}
	var regN, digN *yaml.Node
	repo := repoN.Value
	if v.Registry != "" {
		if regN, err = ve.node(v.Registry); err != nil {
			return err
		}
		if regN.Value != "" {
			repo = strings.TrimSuffix(regN.Value, "/") + "/" + repo
		}
	}
	full := repo
	if tagN.Value != "" {
		full += ":" + tagN.Value
	}
	if v.Digest != "" {
		if digN, err = ve.node(v.Digest); err != nil {
			return err
		}
		if digN.Value != "" {
			full += "@" + digN.Value
		}
	}
	cur, err := imageref.Parse(full)
	if err != nil {
		return fmt.Errorf("%s: current image %q: %w", ve.file, full, err)
	}
	o := opts
	if digN == nil && o.Pin != PinDigest {
		o.Pin = PinTag // nowhere to write a digest
	}
	val, err := NewValue(cur, pushed, o)
	if err != nil {
		return fmt.Errorf("%s: %w", ve.file, err)
	}
	next, _ := imageref.Parse(val)
	nextRepo := next.Repo
	if regN != nil && regN.Value != "" {
		host, rest, _ := strings.Cut(next.Repo, "/")
		if next.Repo != repo {
			ve.change(v.Registry, regN, host)
		}
		nextRepo = rest
	}
	ve.change(v.Repository, repoN, nextRepo)
	if digN == nil && next.Digest != "" {
		ve.change(v.Tag, tagN, next.Tag+"@"+next.Digest)
	} else {
		ve.change(v.Tag, tagN, next.Tag)
	}
	if digN != nil {
		ve.change(v.Digest, digN, next.Digest)
	}
	return nil
}
