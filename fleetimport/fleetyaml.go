package fleetimport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds a fleet.yaml or GitRepo file: a fleet.yaml may carry Helm values inline, but
// nothing an import needs comes near this.
const MaxFileBytes = 8 << 20

// Scan is one imageScans entry of a fleet.yaml, as Fleet reads it, with the line of each field so
// that what cannot be translated is named where it is written.
type Scan struct {
	// File is the fleet.yaml (relative to the root, slash-separated); Index the entry's position.
	File  string
	Index int
	Line  int
	// Image, TagName, Interval, SecretRef and Suspend are the ImageScan spec's fields.
	Image, TagName, Interval, SecretRef string
	Suspend                             bool
	// Semver is policy.semver (Range its range); Alphabetical is policy.alphabetical (Order its order).
	Semver, Alphabetical bool
	Range, Order         string
	// lines of the fields, by their Fleet names (image, tagName, interval, range, order, …).
	lines map[string]int
}

// At is "file:line" of a field of the scan (the entry's line when the field is not written).
func (s Scan) At(field string) string {
	if l := s.lines[field]; l > 0 {
		return fmt.Sprintf("%s:%d", s.File, l)
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// lineOf is the line of a field (the entry's when the field is not written).
func (s Scan) lineOf(field string) int {
	if l := s.lines[field]; l > 0 {
		return l
	}
	return s.Line
}

// readFleetYAML reads the imageScans of one fleet.yaml. Fleet decodes fleet.yaml with
// sigs.k8s.io/yaml: YAML 1.1 scalars (yes and on are booleans) turned into JSON, then
// encoding/json, whose keys match case-insensitively and which ignores unknown keys. A value
// Fleet would refuse is refused here with its line; a key Fleet ignores is a note.
func readFleetYAML(file string, data []byte) ([]Scan, []Note, error) {
	if len(data) > MaxFileBytes {
		return nil, nil, refuse(ReasonNotReadable, file, 0, "larger than %d bytes", MaxFileBytes)
	}
	root, extra, err := firstDocument(data)
	if err != nil {
		return nil, nil, refuse(ReasonNotReadable, file, yamlErrLine(err), "not YAML: %v", err)
	}
	var notes []Note
	if extra > 0 {
		notes = append(notes, Note{Reason: ReasonIgnored, File: file, Line: extra,
			Detail: "a second YAML document: Fleet reads only the first, and so does the import"})
	}
	if root == nil {
		return nil, notes, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, notes, refuse(ReasonBadType, file, root.Line, "fleet.yaml must be a mapping")
	}
	src := source{file: file}
	scansNode, err := field(src, root, "imageScans")
	if err != nil || scansNode == nil || isNull(scansNode) {
		return nil, notes, err
	}
	if err := noAliases(file, scansNode); err != nil {
		return nil, notes, err
	}
	if scansNode.Kind != yaml.SequenceNode {
		return nil, notes, refuse(ReasonBadType, file, scansNode.Line, "imageScans must be a list")
	}
	var scans []Scan
	for i, n := range scansNode.Content {
		s, ns, err := readScan(file, i, n)
		notes = append(notes, ns...)
		if err != nil {
			return nil, notes, err
		}
		scans = append(scans, s)
	}
	return scans, notes, nil
}

func readScan(file string, i int, n *yaml.Node) (Scan, []Note, error) {
	s := Scan{File: file, Index: i, Line: n.Line, lines: map[string]int{}}
	src := source{file: file}
	if isNull(n) {
		return s, nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return s, nil, refuse(ReasonBadType, file, n.Line, "imageScans[%d] must be a mapping", i)
	}
	notes := unknownKeys(src, n, fmt.Sprintf("imageScans[%d]", i), "name", "tagName", "gitrepoName", "image", "interval", "secretRef", "suspend", "policy")
	if err := readStrings(src, n, s.lines, stringDst{"image", &s.Image}, stringDst{"tagName", &s.TagName}, stringDst{"interval", &s.Interval}); err != nil {
		return s, notes, err
	}
	if _, _, err := stringField(src, n, "name"); err != nil { // unused by Fleet, but decoded
		return s, notes, err
	}
	if g, line, err := stringField(src, n, "gitrepoName"); err != nil {
		return s, notes, err
	} else if g != "" {
		notes = append(notes, Note{Reason: ReasonIgnored, File: file, Line: line,
			Detail: "gitrepoName: Fleet sets it to the GitRepo that holds the bundle; the import ignores it likewise"})
	}
	if b, line, err := boolField(src, n, "suspend"); err != nil {
		return s, notes, err
	} else {
		s.Suspend, s.lines["suspend"] = b, line
	}
	ref, err := field(src, n, "secretRef")
	if err != nil {
		return s, notes, err
	}
	if ref != nil && !isNull(ref) {
		if ref.Kind != yaml.MappingNode {
			return s, notes, refuse(ReasonBadType, file, ref.Line, "secretRef must be a mapping with name")
		}
		notes = append(notes, unknownKeys(src, ref, "secretRef", "name")...)
		v, line, err := stringField(src, ref, "name")
		if err != nil {
			return s, notes, err
		}
		s.SecretRef, s.lines["secretRef"] = v, max(line, ref.Line)
	}
	more, err := s.readPolicy(src, n)
	return s, append(notes, more...), err
}

// readPolicy reads a scan's policy: semver's range or alphabetical's order (a null one is none).
func (s *Scan) readPolicy(src source, n *yaml.Node) ([]Note, error) {
	pol, err := field(src, n, "policy")
	if err != nil || pol == nil || isNull(pol) {
		return nil, err
	}
	if pol.Kind != yaml.MappingNode {
		return nil, refuse(ReasonBadType, src.file, pol.Line, "policy must be a mapping")
	}
	s.lines["policy"] = pol.Line
	notes := unknownKeys(src, pol, "policy", "semver", "alphabetical")
	for _, p := range []struct {
		key, sub string
		set      *bool
		dst      *string
	}{{"semver", "range", &s.Semver, &s.Range}, {"alphabetical", "order", &s.Alphabetical, &s.Order}} {
		m, err := field(src, pol, p.key)
		if err != nil {
			return notes, err
		}
		if m == nil || isNull(m) {
			continue // a null policy is no policy (+nullable)
		}
		if m.Kind != yaml.MappingNode {
			return notes, refuse(ReasonBadType, src.file, m.Line, "policy.%s must be a mapping", p.key)
		}
		notes = append(notes, unknownKeys(src, m, "policy."+p.key, p.sub)...)
		v, line, err := stringField(src, m, p.sub)
		if err != nil {
			return notes, err
		}
		*p.set, *p.dst, s.lines[p.key], s.lines[p.sub] = true, v, m.Line, max(line, m.Line)
	}
	return notes, nil
}

// source is a file being read, and whether its keys match exactly (a Kubernetes object, decoded
// by the API server) or case-insensitively (fleet.yaml, decoded by encoding/json).
type source struct {
	file  string
	exact bool
}

// firstDocument decodes the first YAML document of data, and the line of a second one (0: none).
func firstDocument(data []byte) (*yaml.Node, int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, nil
		}
		return nil, 0, err
	}
	var next yaml.Node
	extra := 0
	if err := dec.Decode(&next); err == nil {
		extra = max(next.Line, 1)
	}
	if len(doc.Content) == 0 {
		return nil, extra, nil
	}
	return doc.Content[0], extra, nil
}

var errLineRe = regexp.MustCompile(`line (\d+)`)

// yamlErrLine is the line a YAML error names (0 when it names none).
func yamlErrLine(err error) int {
	if m := errLineRe.FindStringSubmatch(err.Error()); m != nil {
		n := 0
		fmt.Sscan(m[1], &n)
		return n
	}
	return 0
}

// field returns the value of key in mapping m, matched as Fleet's reader matches it: exactly, or
// case-insensitively when exact is false (encoding/json). Two keys that match are refused: which
// one Fleet used depends on their order, and that is not what anyone meant.
func field(src source, m *yaml.Node, key string) (*yaml.Node, error) {
	file, exact := src.file, src.exact
	var found, foundKey *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind == yaml.AliasNode || k.Value == "<<" && k.Tag == "!!merge" {
			return nil, refuse(ReasonBadType, file, k.Line, "an alias or merge key: write the values out")
		}
		if k.Value != key && (exact || !strings.EqualFold(k.Value, key)) {
			continue
		}
		if found != nil {
			return nil, refuse(ReasonAmbiguous, file, k.Line, "%s is given twice (also line %d)", key, foundKey.Line)
		}
		found, foundKey = m.Content[i+1], k
	}
	return found, nil
}

// unknownKeys notes the keys of m that Fleet ignores.
func unknownKeys(src source, m *yaml.Node, where string, known ...string) []Note {
	file := src.file
	var notes []Note
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		ok := false
		for _, kn := range known {
			ok = ok || k.Value == kn || !src.exact && strings.EqualFold(k.Value, kn)
		}
		if !ok {
			notes = append(notes, Note{Reason: ReasonIgnored, File: file, Line: k.Line,
				Detail: fmt.Sprintf("%s.%s: not a field Fleet reads; ignored", where, k.Value)})
		}
	}
	return notes
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// yaml11Bools are the plain scalars YAML 1.1 (Fleet's reader) reads as booleans.
var yaml11Bools = map[string]bool{"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"true": true, "True": true, "TRUE": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
	"false": false, "False": false, "FALSE": false}

// yaml11Number matches the plain scalars YAML 1.1 reads as numbers (underscores, 0b, 0x, 0o).
var yaml11Number = regexp.MustCompile(`^[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?|\.[0-9_]+([eE][-+]?[0-9]+)?|\.(inf|Inf|INF)|\.(nan|NaN|NAN))$`)

// stringField reads a text field; null or absent is "". A plain scalar that Fleet's reader takes
// for a number or a boolean is refused: Fleet refuses the bundle for it.
func stringField(src source, m *yaml.Node, key string) (string, int, error) {
	file := src.file
	n, err := field(src, m, key)
	if err != nil || n == nil || isNull(n) {
		return "", 0, err
	}
	if n.Kind != yaml.ScalarNode {
		return "", n.Line, refuse(ReasonBadType, file, n.Line, "%s must be text, not a %s", key, kindName(n))
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		if _, isBool := yaml11Bools[n.Value]; isBool || n.Tag != "!!str" || yaml11Number.MatchString(n.Value) {
			return "", n.Line, refuse(ReasonBadType, file, n.Line, "%s: %s is not text for Fleet's YAML reader (it refuses the bundle); quote it", key, n.Value)
		}
	}
	return n.Value, n.Line, nil
}

// boolField reads a boolean as YAML 1.1 does (yes, on, true, …).
func boolField(src source, m *yaml.Node, key string) (bool, int, error) {
	file := src.file
	n, err := field(src, m, key)
	if err != nil || n == nil || isNull(n) {
		return false, 0, err
	}
	b, ok := yaml11Bools[n.Value]
	if n.Kind != yaml.ScalarNode || !ok || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		return false, n.Line, refuse(ReasonBadType, file, n.Line, "%s must be true or false", key)
	}
	return b, n.Line, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "scalar"
}

// noAliases refuses aliases and merge keys under n: Fleet expands them, the import does not guess.
func noAliases(file string, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return refuse(ReasonBadType, file, n.Line, "an anchor or alias: write the values out")
	}
	for _, c := range n.Content {
		if err := noAliases(file, c); err != nil {
			return err
		}
	}
	return nil
}
