// Package tagpolicy decides which pushed tags a hook acts on: semver:<constraint>, regex:<re>,
// glob:<pattern>, or alphabetical:highest|lowest. Config validates a hook's policy with it; the
// listener applies it, and reconcile ranks the tags it finds by the policy's Order.
package tagpolicy

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Policy reports whether a tag is accepted, and why not.
type Policy func(tag string) (bool, string)

// Parse compiles a policy; "" accepts every tag.
func Parse(s string) (Policy, error) {
	if s == "" {
		return func(string) (bool, string) { return true, "" }, nil
	}
	kind, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" {
		return nil, fmt.Errorf("%q: want semver:<constraint>, regex:<re>, glob:<pattern> or alphabetical:highest|lowest", s)
	}
	switch kind {
	case "semver":
		c, err := semver.NewConstraint(arg)
		if err != nil {
			return nil, fmt.Errorf("semver %q: %w", arg, err)
		}
		return func(tag string) (bool, string) {
			v, err := semver.NewVersion(tag) // accepts a leading v
			if err != nil {
				return false, fmt.Sprintf("tag %s is not a semantic version (policy %s)", tag, s)
			}
			if !c.Check(v) {
				return false, fmt.Sprintf("tag %s does not satisfy %s", tag, s)
			}
			return true, ""
		}, nil
	case "regex":
		re, err := regexp.Compile(arg)
		if err != nil {
			return nil, fmt.Errorf("regex %q: %w", arg, err)
		}
		return func(tag string) (bool, string) {
			if !re.MatchString(tag) {
				return false, fmt.Sprintf("tag %s does not match %s", tag, s)
			}
			return true, ""
		}, nil
	case "glob":
		if _, err := path.Match(arg, ""); err != nil {
			return nil, fmt.Errorf("glob %q: %w", arg, err)
		}
		return func(tag string) (bool, string) {
			if ok, _ := path.Match(arg, tag); !ok {
				return false, fmt.Sprintf("tag %s does not match %s", tag, s)
			}
			return true, ""
		}, nil
	case "alphabetical":
		// Every tag is allowed; what the order decides is which one reconcile chooses.
		if arg != "highest" && arg != "lowest" {
			return nil, fmt.Errorf("alphabetical %q: want highest or lowest", arg)
		}
		return func(string) (bool, string) { return true, "" }, nil
	}
	return nil, fmt.Errorf("%q: unknown policy %q (want semver, regex, glob or alphabetical)", s, kind)
}

// Order is how reconcile ranks the tags a policy allows, to choose the latest.
type Order int

const (
	// BySemver ranks semantic versions (Masterminds semver); a tag that is not one is never chosen.
	BySemver Order = iota
	// Highest chooses the greatest tag in byte order (Fleet's alphabetical order desc, its default).
	Highest
	// Lowest chooses the least tag in byte order (Fleet's alphabetical order asc).
	Lowest
)

// OrderOf returns the order of a policy that Parse accepted.
func OrderOf(s string) Order {
	switch s {
	case "alphabetical:highest":
		return Highest
	case "alphabetical:lowest":
		return Lowest
	}
	return BySemver
}

// Latest returns the tag the order chooses among those the policy allows, and whether it is a
// step forward from cur (cur "" is passed by everything). Under BySemver a cur that is not a
// version is passed by every version only when anyVersion is set; otherwise nothing is newer than it.
func (o Order) Latest(policy Policy, tags []string, cur string, anyVersion bool) (string, bool) {
	if o == BySemver {
		var floor *semver.Version
		if cur != "" {
			v, err := semver.NewVersion(cur)
			switch {
			case err == nil:
				floor = v
			case !anyVersion:
				return "", false
			}
		}
		best, bestV := "", floor
		for _, tag := range tags {
			v, err := semver.NewVersion(tag)
			// Strictly greater: of two spellings of one version the first listed wins, as in Fleet.
			if err != nil || bestV != nil && !v.GreaterThan(bestV) {
				continue
			}
			if ok, _ := policy(tag); ok {
				best, bestV = tag, v
			}
		}
		return best, best != ""
	}
	best := ""
	for _, tag := range tags {
		if ok, _ := policy(tag); !ok {
			continue
		}
		if best == "" || o == Highest && tag > best || o == Lowest && tag < best {
			best = tag
		}
	}
	switch {
	case best == "":
		return "", false
	case cur == "":
		return best, true
	case o == Highest:
		return best, best > cur
	}
	return best, best < cur
}
