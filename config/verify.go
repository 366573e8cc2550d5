package config

import (
	"encoding/pem"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Verify says what imagehook asks the registry before it writes a push. In YAML it is `registry`,
// `none` (a hook opting out of the top-level default), or a mapping:
//
//	verify: {registry: true, cosign: {key: /run/secrets/cosign.pub}}
type Verify struct {
	// Registry resolves the pushed tag in its registry: a tag the registry does not have, or a
	// digest that differs from the registry's, fails the event and nothing is written.
	Registry bool `yaml:"registry"`
	// Cosign requires a cosign signature of the registry's digest made with a key; it implies
	// Registry, since the signature is checked for the digest the registry holds.
	Cosign *Cosign `yaml:"cosign"`
	// invalid keeps a scalar that is none of the words, for validate to name with its place.
	invalid string
}

// Cosign is the key a signature gate checks with.
type Cosign struct {
	// Key is the path of the PEM public key (`cosign generate-key-pair` writes cosign.pub).
	Key string `yaml:"key" secretfile:"KeyPEM"`
	// KeyPEM is the key file's content, read at load.
	KeyPEM []byte `yaml:"-"`
}

// UnmarshalYAML takes the scalar forms besides the mapping.
func (v *Verify) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "registry":
			v.Registry = true
		case "none", "":
		default:
			v.invalid = n.Value
		}
		return nil
	}
	type plain Verify
	return n.Decode((*plain)(v))
}

// Resolves reports whether pushes are resolved in their registry before writing.
func (v *Verify) Resolves() bool { return v != nil && (v.Registry || v.Cosign != nil) }

// Signed reports whether pushes need a cosign signature.
func (v *Verify) Signed() bool { return v != nil && v.Cosign != nil }

// validate checks the words and the key's form; oci parses the key itself when imagehook starts.
func (v *Verify) validate(errs *problems, where string) {
	if v == nil {
		return
	}
	if v.invalid != "" {
		errs.add("%s: %q is not registry, none or {cosign: {key: …}}", where, v.invalid)
	}
	if v.Cosign == nil {
		return
	}
	if v.Cosign.Key == "" {
		errs.add("%s.cosign.key: required (the path of cosign.pub)", where)
		return
	}
	block, _ := pem.Decode(v.Cosign.KeyPEM)
	switch {
	case block == nil:
		errs.add("%s.cosign.key: %s is not a PEM public key", where, v.Cosign.Key)
	case strings.Contains(block.Type, "PRIVATE"):
		// Never echo any of it: the private key must not reach a log.
		errs.add("%s.cosign.key: %s is a private key; give the public key (cosign.pub)", where, v.Cosign.Key)
	case block.Type != "PUBLIC KEY":
		errs.add("%s.cosign.key: %s holds a %q block, not a PUBLIC KEY", where, v.Cosign.Key, block.Type)
	}
}

// String is how the event page and check-config name the checks.
func (v *Verify) String() string {
	switch {
	case v.Signed():
		return fmt.Sprintf("registry + cosign (%s)", v.Cosign.Key)
	case v.Resolves():
		return "registry"
	}
	return "none"
}
