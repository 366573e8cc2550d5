// Package confyaml holds the value types that configuration sections share, so that a component
// can own its section's type (package config decodes it) without importing config: a duration
// written as "30s", and the placeholder a ${VAR} stands as while the file is decoded.
package confyaml

import (
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvMark brackets the name of a ${VAR} while the file is decoded: config swaps every ${VAR} for
// EnvMark+VAR+EnvMark, which YAML reads as plain text anywhere, and expands it in decoded strings.
const EnvMark = "__imagehook_env__"

// EnvMarked matches one placeholder; its group is the variable's name.
var EnvMarked = regexp.MustCompile(EnvMark + `([A-Za-z_][A-Za-z0-9_]*?)` + EnvMark)

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if m := EnvMarked.FindStringSubmatch(n.Value); m != nil {
		// ${VAR} is expanded in strings only, after decoding: name the variable, not the
		// placeholder it stands as while the file is decoded.
		return fmt.Errorf("line %d: ${%s} in a duration: environment variables are expanded in text values only; write the duration (such as 30s)", n.Line, m[1])
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
