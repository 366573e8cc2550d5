// Package tagpolicy decides which pushed tags a hook acts on: semver:<constraint>, regex:<re> or
// glob:<pattern>. Config validates a hook's policy with it; the listener applies it.
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
		return nil, fmt.Errorf("%q: want semver:<constraint>, regex:<re> or glob:<pattern>", s)
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
	}
	return nil, fmt.Errorf("%q: unknown policy %q (want semver, regex or glob)", s, kind)
}
