package imageref

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// The pure rules of writing a pushed image in place of the current one: the manifest's own
// spelling, digest pinning, no-downgrade, and which registry hosts serve the same repositories. The
// rewrite in git and direct apply both follow them.

// Errors callers branch on.
var (
	// ErrUnsafe means the rule cannot write the push without losing something (a digest pin).
	ErrUnsafe = errors.New("refusing to rewrite")
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

// Rules tune NewValue.
type Rules struct {
	Pin Pin
	// WriteHost writes the pushed image's registry host where the current image names the same
	// repository path on another host (the push asked for that host explicitly).
	WriteHost bool
	// NoDowngrade refuses a semantic version lower than the current one.
	NoDowngrade bool
	// RegistryAliases groups registry hosts that serve the same repositories (a public and a VPC
	// endpoint, a Harbor's external and internal names). When set, the same repository path on
	// two hosts counts as one repository only if the hosts share a group; when empty, any host does.
	RegistryAliases [][]string
}

// SameRegistry reports whether two hosts may serve the same repository under the rules.
func (o Rules) SameRegistry(a, b string) bool {
	if a == b || len(o.RegistryAliases) == 0 {
		return true
	}
	for _, group := range o.RegistryAliases {
		hasA, hasB := false, false
		for _, h := range group {
			hasA = hasA || strings.EqualFold(h, a)
			hasB = hasB || strings.EqualFold(h, b)
		}
		if hasA && hasB {
			return true
		}
	}
	return false
}

// NewValue decides the string to write in place of cur for the pushed image: the manifest's own
// spelling of the repository, and a tag, or tag@digest under the pin rules.
func NewValue(cur, pushed Ref, opts Rules) (string, error) {
	next := pushed
	switch {
	case cur.SameRepository(pushed):
		// Keep the manifest's own spelling of the repository (acme/api, not docker.io/acme/api).
		next = pushed.WithRepo(cur)
	case cur.Path() != pushed.Path() || !opts.SameRegistry(cur.Host(), pushed.Host()):
		return "", fmt.Errorf("%w: pushed %s, target runs %s", ErrOtherRepository, pushed.Repo, cur.Repo)
	case !opts.WriteHost:
		// The same repository behind another host: a VPC endpoint, a registry's external name.
		// The manifest's host is the one its cluster can pull from.
		next = pushed.WithRepo(cur)
	}
	if err := CheckDowngrade(cur.Tag, next.Tag, opts); err != nil {
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

// CheckDowngrade refuses, under NoDowngrade, a semantic version lower than the current one; any
// tag that is not a semantic version is allowed.
func CheckDowngrade(cur, next string, opts Rules) error {
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
