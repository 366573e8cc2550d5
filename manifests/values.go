package manifests

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"gopkg.in/yaml.v3"

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
	var res Result
	file := path.Clean(path.Join(strings.TrimPrefix(dir, "/"), v.File))
	if !fs.ValidPath(file) || v.File == "" {
		return res, fmt.Errorf("values file %q: must be a file inside the repository", v.File)
	}
	data, err := opts.Budget.read(fsys, file)
	if err != nil {
		return res, err
	}
	docs, err := parseAll(data)
	if err != nil || len(docs) == 0 || len(docs[0].Content) == 0 {
		return res, fmt.Errorf("%s: not a YAML values file: %v", file, err)
	}
	root := docs[0].Content[0]
	node := func(p string) (*yaml.Node, error) {
		n := root
		for _, k := range strings.Split(p, ".") {
			if n = lookup(n, k); n == nil {
				return nil, fmt.Errorf("%s: %w: no value at %s", file, ErrNotFound, p)
			}
		}
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: %s is not a scalar", file, p)
		}
		return n, nil
	}
	var edits []edit
	change := func(what string, n *yaml.Node, val string) {
		res.Changes = append(res.Changes, Change{File: file, Kind: "values", Name: what, Line: n.Line, Old: n.Value, New: val})
		if val != n.Value {
			edits = append(edits, edit{node: n, value: val})
		}
	}
	if v.Image != "" {
		n, err := node(v.Image)
		if err != nil {
			return res, err
		}
		cur, err := imageref.Parse(n.Value)
		if err != nil {
			return res, fmt.Errorf("%s: %s: %w", file, v.Image, err)
		}
		val, err := NewValue(cur, pushed, opts)
		if err != nil {
			return res, fmt.Errorf("%s: %w", file, err)
		}
		change(v.Image, n, val)
	} else {
		if v.Repository == "" || v.Tag == "" {
			return res, fmt.Errorf("values: set image, or repository and tag")
		}
		repoN, err := node(v.Repository)
		if err != nil {
			return res, err
		}
		tagN, err := node(v.Tag)
		if err != nil {
			return res, err
		}
		var regN, digN *yaml.Node
		repo := repoN.Value
		if v.Registry != "" {
			if regN, err = node(v.Registry); err != nil {
				return res, err
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
			if digN, err = node(v.Digest); err != nil {
				return res, err
			}
			if digN.Value != "" {
				full += "@" + digN.Value
			}
		}
		cur, err := imageref.Parse(full)
		if err != nil {
			return res, fmt.Errorf("%s: current image %q: %w", file, full, err)
		}
		o := opts
		if digN == nil && o.Pin != PinDigest {
			o.Pin = PinTag // nowhere to write a digest
		}
		val, err := NewValue(cur, pushed, o)
		if err != nil {
			return res, fmt.Errorf("%s: %w", file, err)
		}
		next, _ := imageref.Parse(val)
		nextRepo := next.Repo
		if regN != nil && regN.Value != "" {
			host, rest, _ := strings.Cut(next.Repo, "/")
			if next.Repo != repo {
				change(v.Registry, regN, host)
			}
			nextRepo = rest
		}
		change(v.Repository, repoN, nextRepo)
		if digN == nil && next.Digest != "" {
			change(v.Tag, tagN, next.Tag+"@"+next.Digest)
		} else {
			change(v.Tag, tagN, next.Tag)
		}
		if digN != nil {
			change(v.Digest, digN, next.Digest)
		}
	}
	files, err := spliceFiles(map[string][]byte{file: data}, map[string][]edit{file: edits})
	if err != nil {
		return Result{}, err
	}
	if len(edits) == 0 {
		delete(files, file)
	}
	res.Files = files
	return res, nil
}
