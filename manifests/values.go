package manifests

import (
	"fmt"
	"io/fs"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
)

// Values names where a Helm values file keeps an image (event.Values: the config's, the event's
// and the rewrite's are one type).
type Values = event.Values

// SetValues rewrites the image in a Helm values file.
func SetValues(fsys fs.FS, dir string, v Values, pushed imageref.Ref, opts Options) (Result, error) {
	ve, err := readValues(fsys, dir, v, opts)
	if err != nil {
		if ve != nil {
			return ve.res, err
		}
		return Result{}, err
	}
	if v.Image != "" {
		err = ve.image(v, pushed, opts)
	} else {
		err = ve.split(v, pushed, opts)
	}
	if err != nil {
		return ve.res, err
	}
	files, err := spliceFiles(map[string][]byte{ve.file: ve.data}, map[string][]edit{ve.file: ve.edits})
	if err != nil {
		return Result{}, err
	}
	if len(ve.edits) == 0 {
		delete(files, ve.file)
	}
	ve.res.Files = files
	return ve.res, nil
}

// valuesEdit collects the changes to one values file.
type valuesEdit struct {
	file  string
	data  []byte
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

// valuesRef is the reference a values file keeps, as the rewrite reads it: the whole reference
// (full) and the scalars it came from (image, or repository and tag with registry and digest
// when named).
type valuesRef struct {
	full                string
	repo                string // registry and repository joined
	imageN, repoN, tagN *yaml.Node
	regN, digN          *yaml.Node
}

// reference reads the image v names: the one rule for the rewrite and for what the file holds now.
func (ve *valuesEdit) reference(v Values) (valuesRef, error) {
	var r valuesRef
	var err error
	if v.Image != "" {
		if r.imageN, err = ve.node(v.Image); err != nil {
			return r, err
		}
		r.full = r.imageN.Value
		return r, nil
	}
	if v.Repository == "" || v.Tag == "" {
		return r, fmt.Errorf("values: set image, or repository and tag")
	}
	if r.repoN, err = ve.node(v.Repository); err != nil {
		return r, err
	}
	if r.tagN, err = ve.node(v.Tag); err != nil {
		return r, err
	}
	r.repo = r.repoN.Value
	if v.Registry != "" {
		if r.regN, err = ve.node(v.Registry); err != nil {
			return r, err
		}
		if r.regN.Value != "" {
			r.repo = strings.TrimSuffix(r.regN.Value, "/") + "/" + r.repo
		}
	}
	r.full = r.repo
	if r.tagN.Value != "" {
		r.full += ":" + r.tagN.Value
	}
	if v.Digest != "" {
		if r.digN, err = ve.node(v.Digest); err != nil {
			return r, err
		}
		if r.digN.Value != "" {
			r.full += "@" + r.digN.Value
		}
	}
	return r, nil
}

// image rewrites a whole reference kept at one key.
func (ve *valuesEdit) image(v Values, pushed imageref.Ref, opts Options) error {
	r, err := ve.reference(v)
	if err != nil {
		return err
	}
	cur, err := imageref.Parse(r.full)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", ve.file, v.Image, err)
	}
	val, err := NewValue(cur, pushed, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", ve.file, err)
	}
	ve.change(v.Image, r.imageN, val)
	return nil
}

// split rewrites a reference kept in parts: registry, repository, tag and digest keys.
func (ve *valuesEdit) split(v Values, pushed imageref.Ref, opts Options) error {
	r, err := ve.reference(v)
	if err != nil {
		return err
	}
	repoN, tagN, regN, digN, repo, full := r.repoN, r.tagN, r.regN, r.digN, r.repo, r.full
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
