// Package manifests finds container images in Kubernetes YAML and rewrites them by splicing the new
// value into the original bytes, so that comments, quoting, key order, indentation, line endings and
// document separators stay exactly as they were.
package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/workload"
)

// Errors callers branch on. The image-reference rules' errors are imageref's, re-exported.
var (
	ErrNotFound  = errors.New("not found")
	ErrAmbiguous = errors.New("ambiguous target")
	ErrUnsafe    = imageref.ErrUnsafe
	// ErrOtherRepository means the target runs another repository than the one pushed.
	ErrOtherRepository = imageref.ErrOtherRepository
	// ErrDowngrade means the pushed semantic version is lower than the target's (noDowngrade).
	ErrDowngrade = imageref.ErrDowngrade
)

// Skipped reports whether err means "leave this target alone" rather than a failure.
func Skipped(err error) bool { return imageref.Skipped(err) }

// Pin says how the version is written (imageref.Pin).
type Pin = imageref.Pin

// Pin modes (see imageref).
const (
	PinAuto   = imageref.PinAuto
	PinTag    = imageref.PinTag
	PinDigest = imageref.PinDigest
)

// NewValue decides the string to write in place of cur (imageref.NewValue under opts' rules).
func NewValue(cur, pushed imageref.Ref, opts Options) (string, error) {
	return imageref.NewValue(cur, pushed, opts.rules())
}

// Selector names what to update. With Kind and Name empty every container whose image has the new
// image's repository is updated.
type Selector struct {
	Kind      string
	Name      string
	Namespace string
	Container string
}

// WorkloadTarget is the target of a "kind/name" workload (kind from package workload's table).
func WorkloadTarget(kindName, namespace, container string) (Selector, error) {
	ref, err := workload.Parse(kindName)
	if err != nil {
		return Selector{}, err
	}
	return Selector{Kind: ref.Kind.Name, Name: ref.Name, Namespace: namespace, Container: container}, nil
}

// String names the target as a person reads it, for errors.
func (t Selector) String() string {
	s := "all references"
	if t.Name != "" {
		s = strings.ToLower(t.Kind) + "/" + t.Name
	}
	if t.Namespace != "" {
		s += " in namespace " + t.Namespace
	}
	if t.Container != "" {
		s += " container " + t.Container
	}
	return s
}

// PlaceKind says what kind of place a Change is in, so that callers never read it back from the
// Kind or Container texts (which stay what a person reads: "values", "marker <id>", "images").
type PlaceKind int

// The kinds of place a rewrite changes.
const (
	// PlaceWorkload is a container (or init container) image of a workload.
	PlaceWorkload PlaceKind = iota
	// PlaceValues is an image in a Helm values file.
	PlaceValues
	// PlaceMarker is a scalar marked for an id by a line comment.
	PlaceMarker
	// PlaceKustomize is an entry of a kustomization's images list.
	PlaceKustomize
)

// Change is one image value found for the target: changed when Old != New.
type Change struct {
	File string
	// Place is the kind of place the value is in (not in set-image's JSON, which stays as it was).
	Place     PlaceKind `json:"-"`
	Kind      string
	Name      string
	Namespace string
	Container string
	Line      int
	Old       string
	New       string
}

// Changed reports whether the change alters the file.
func (c Change) Changed() bool { return c.Old != c.New }

// String is set-image's line for the change: "file: kind/name container c: old -> new".
func (c Change) String() string {
	if c.Place == PlaceValues {
		if !c.Changed() {
			return fmt.Sprintf("%s: %s: %s (up to date)", c.File, c.Name, c.Old)
		}
		return fmt.Sprintf("%s: %s: %s -> %s", c.File, c.Name, c.Old, c.New)
	}
	if !c.Changed() {
		return fmt.Sprintf("%s: %s/%s container %s: %s (up to date)", c.File, strings.ToLower(c.Kind), c.Name, c.Container, c.Old)
	}
	return fmt.Sprintf("%s: %s/%s container %s: %s -> %s", c.File, strings.ToLower(c.Kind), c.Name, c.Container, c.Old, c.New)
}

// Result is what RewriteSelected found and the new content of every file it changed.
type Result struct {
	Changes []Change
	// Files maps a slash-separated path (as given to fs.FS) to its new bytes; only changed files.
	Files map[string][]byte
	// NotRead names the files that could hold the target but were not read, or not wholly, each
	// with its typed reason: too big, past a budget, not YAML. Warnings are the same as lines.
	NotRead  []NotRead
	Warnings []string
}

// Changed reports whether any file changes.
func (r Result) Changed() bool { return len(r.Files) > 0 }

// Place is one place to update under Path: a workload's containers (Workload; an empty one means
// every reference to the pushed repository), a Helm values file (Values), or the scalars marked for
// an id (Marker).
type Place struct {
	Path     string
	Workload Selector
	Values   *Values
	Marker   string
}

// Rewrite is the one entry point for every kind of place: it finds the place under fsys and computes
// the rewrite that makes its image pushed. Nothing is written: the caller stores Result.Files.
func Rewrite(fsys fs.FS, p Place, pushed imageref.Ref, opts Options) (Result, error) {
	switch {
	case p.Marker != "":
		return SetMarkers(fsys, p.Path, p.Marker, pushed, opts)
	case p.Values != nil:
		return SetValues(fsys, p.Path, *p.Values, pushed, opts)
	}
	return RewriteSelected(fsys, p.Path, p.Workload, pushed, opts)
}
