// Package manifests finds container images in Kubernetes YAML and rewrites them by splicing the new
// value into the original bytes, so that comments, quoting, key order, indentation, line endings and
// document separators stay exactly as they were.
package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagehook/imagehook/imageref"
)

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("not found")
	ErrAmbiguous = errors.New("ambiguous target")
	ErrUnsafe    = errors.New("refusing to rewrite")
	// ErrOtherRepository means the target runs another repository than the one pushed (a Harbor
	// project webhook fires for every repository in the project): the target is left alone.
	ErrOtherRepository = errors.New("target runs another repository")
	// ErrDowngrade means the pushed semantic version is lower than the target's (noDowngrade).
	ErrDowngrade = errors.New("refusing a downgrade")
)

// Skipped reports whether err means "leave this target alone" rather than a failure.
func Skipped(err error) bool {
	return errors.Is(err, ErrOtherRepository) || errors.Is(err, ErrDowngrade)
}

// Pin says how the version is written.
type Pin string

// Pin modes: PinAuto writes tag@digest when the manifest already pins a digest or when the tag is
// re-pushed (same tag, new digest), else the tag; PinTag always writes the tag; PinDigest always
// writes tag@digest.
const (
	PinAuto   Pin = ""
	PinTag    Pin = "tag"
	PinDigest Pin = "digest"
)

// Target names what to update. With Kind and Name empty every container whose image has the new
// image's repository is updated.
type Target struct {
	Kind      string
	Name      string
	Namespace string
	Container string
}

// String names the target as a person reads it, for errors.
func (t Target) String() string {
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

// Change is one image value found for the target: changed when Old != New.
type Change struct {
	File      string
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
	if c.Kind == "values" {
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

// Result is what SetImage found and the new content of every file it changed.
type Result struct {
	Changes []Change
	// Files maps a slash-separated path (as given to fs.FS) to its new bytes; only changed files.
	Files map[string][]byte
	// Warnings name files that were skipped, such as templates that do not parse as YAML.
	Warnings []string
}

// Changed reports whether any file changes.
func (r Result) Changed() bool { return len(r.Files) > 0 }

// NewValue decides the string to write in place of cur for the pushed image: the manifest's own
// spelling of the repository, and a tag, or tag@digest under the pin rules.
func NewValue(cur, pushed imageref.Ref, opts Options) (string, error) {
	next := pushed
	switch {
	case cur.SameRepository(pushed):
		// Keep the manifest's own spelling of the repository (acme/api, not docker.io/acme/api).
		next = pushed.WithRepo(cur)
	case cur.Path() != pushed.Path() || !opts.sameRegistry(cur.Host(), pushed.Host()):
		return "", fmt.Errorf("%w: pushed %s, target runs %s", ErrOtherRepository, pushed.Repo, cur.Repo)
	case !opts.WriteHost:
		// The same repository behind another host: a VPC endpoint, a registry's external name.
		// The manifest's host is the one its cluster can pull from.
		next = pushed.WithRepo(cur)
	}
	if err := checkDowngrade(cur.Tag, next.Tag, opts); err != nil {
		return "", err
	}
	pin := opts.Pin
	if next.Tag == "" && cur.Tag != "" && next.Digest == "" {
		return "", fmt.Errorf("%w: pushed image %s has neither tag nor digest", ErrUnsafe, pushed)
	}
	switch pin {
	case PinTag:
		next.Digest = ""
	case PinDigest:
		if next.Digest == "" {
			return "", fmt.Errorf("%w: hook pins digests but the push of %s carries no digest", ErrUnsafe, pushed)
		}
	default:
		switch {
		case cur.Digest != "" && next.Digest == "":
			return "", fmt.Errorf("%w: %s is pinned to a digest and the push of %s carries none", ErrUnsafe, cur, pushed)
		case cur.Digest != "":
		case next.Tag == cur.Tag && next.Digest != "":
			// A re-pushed tag (latest, main): only a digest change makes GitOps tools roll out.
		default:
			next.Digest = ""
		}
	}
	return next.String(), nil
}

// checkDowngrade refuses, under NoDowngrade, a semantic version lower than the current one; any
// tag that is not a semantic version is allowed.
func checkDowngrade(cur, next string, opts Options) error {
	if !opts.NoDowngrade || cur == "" || next == "" {
		return nil
	}
	cv, cerr := semver.NewVersion(cur)
	nv, nerr := semver.NewVersion(next)
	if cerr == nil && nerr == nil && nv.LessThan(cv) {
		return fmt.Errorf("%w: %s is older than the running %s", ErrDowngrade, next, cur)
	}
	return nil
}

// Place is one place to update under Path: a workload's containers (Workload; an empty one means
// every reference to the pushed repository), a Helm values file (Values), or the scalars marked for
// an id (Marker).
type Place struct {
	Path     string
	Workload Target
	Values   *Values
	Marker   string
}

// Apply is the one entry point for every kind of place: it finds the place under fsys and computes
// the rewrite that makes its image pushed. Nothing is written: the caller stores Result.Files.
func Apply(fsys fs.FS, p Place, pushed imageref.Ref, opts Options) (Result, error) {
	switch {
	case p.Marker != "":
		return SetMarkers(fsys, p.Path, p.Marker, pushed, opts)
	case p.Values != nil:
		return SetValues(fsys, p.Path, *p.Values, pushed, opts)
	}
	return SetImage(fsys, p.Path, p.Workload, pushed, opts)
}
