package fleetimport

import (
	"bytes"
	"errors"
	"io"

	"go.yaml.in/yaml/v3"
)

// GitRepo is what the import reads of a Fleet GitRepo object.
type GitRepo struct {
	File              string
	Name, Namespace   string
	Repo, Branch      string
	Revision          string
	Paths             []string
	ClientSecretName  string
	ImageScanInterval string
	AuthorName        string
	AuthorEmail       string
	MessageTemplate   string
	lines             map[string]int
}

// lineOf is the line of a field of the GitRepo (its first line when the field is not written).
func (g *GitRepo) lineOf(field string) int {
	if l := g.lines[field]; l > 0 {
		return l
	}
	return g.lines["kind"]
}

// readGitRepo reads the first GitRepo object of a file (kubectl's YAML, decoded by the API server:
// keys match exactly). Other objects in the file are noted.
func readGitRepo(file string, data []byte) (*GitRepo, []Note, error) {
	if len(data) > MaxFileBytes {
		return nil, nil, refuse(ReasonNotReadable, file, 0, "larger than %d bytes", MaxFileBytes)
	}
	src := source{file: file, exact: true}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var notes []Note
	var g *GitRepo
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, notes, refuse(ReasonNotReadable, file, yamlErrLine(err), "not YAML: %v", err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return nil, notes, refuse(ReasonBadType, file, root.Line, "a Kubernetes object must be a mapping")
		}
		kind, _, err := stringField(src, root, "kind")
		if err != nil {
			return nil, notes, err
		}
		if kind != "GitRepo" || g != nil {
			notes = append(notes, Note{Reason: ReasonIgnored, File: file, Line: root.Line, Detail: "not the first GitRepo of the file (kind " + kind + "): not read"})
			continue
		}
		if err := noAliases(file, root); err != nil {
			return nil, notes, err
		}
		var more []Note
		g, more, err = gitRepoObject(src, root)
		notes = append(notes, more...)
		if err != nil {
			return nil, notes, err
		}
	}
	if g == nil {
		return nil, notes, refuse(ReasonInvalid, file, 0, "no object of kind GitRepo in the file")
	}
	return g, notes, nil
}

// stringDst is one text field read into a GitRepo: its key and where it goes.
type stringDst struct {
	key string
	dst *string
}

// readStrings reads text fields of a mapping into their places, and their lines into lines.
func readStrings(src source, m *yaml.Node, lines map[string]int, fields ...stringDst) error {
	for _, f := range fields {
		v, line, err := stringField(src, m, f.key)
		if err != nil {
			return err
		}
		*f.dst, lines[f.key] = v, line
	}
	return nil
}

// gitRepoObject reads one GitRepo object: its name and namespace, its spec's fields, paths and
// imageScanCommit (whose unknown keys are noted).
func gitRepoObject(src source, root *yaml.Node) (*GitRepo, []Note, error) {
	file := src.file
	g := &GitRepo{File: file, lines: map[string]int{"kind": root.Line}}
	if meta, err := field(src, root, "metadata"); err != nil {
		return nil, nil, err
	} else if meta != nil && meta.Kind == yaml.MappingNode {
		if err := readStrings(src, meta, g.lines, stringDst{"name", &g.Name}, stringDst{"namespace", &g.Namespace}); err != nil {
			return nil, nil, err
		}
	}
	spec, err := field(src, root, "spec")
	if err != nil {
		return nil, nil, err
	}
	if spec == nil || spec.Kind != yaml.MappingNode {
		return nil, nil, refuse(ReasonInvalid, file, root.Line, "the GitRepo has no spec")
	}
	if err := readStrings(src, spec, g.lines, stringDst{"repo", &g.Repo}, stringDst{"branch", &g.Branch}, stringDst{"revision", &g.Revision},
		stringDst{"clientSecretName", &g.ClientSecretName}, stringDst{"imageScanInterval", &g.ImageScanInterval}); err != nil {
		return nil, nil, err
	}
	if err := g.readPaths(src, spec); err != nil {
		return nil, nil, err
	}
	notes, err := g.readCommit(src, spec)
	return g, notes, err
}

// readPaths reads spec.paths, a list of text.
func (g *GitRepo) readPaths(src source, spec *yaml.Node) error {
	p, err := field(src, spec, "paths")
	if err != nil || p == nil || isNull(p) {
		return err
	}
	if p.Kind != yaml.SequenceNode {
		return refuse(ReasonBadType, src.file, p.Line, "paths must be a list")
	}
	g.lines["paths"] = p.Line
	for _, e := range p.Content {
		if e.Kind != yaml.ScalarNode || isNull(e) {
			return refuse(ReasonBadType, src.file, e.Line, "paths: each path must be text")
		}
		g.Paths = append(g.Paths, e.Value)
	}
	return nil
}

// readCommit reads spec.imageScanCommit, noting keys it does not know.
func (g *GitRepo) readCommit(src source, spec *yaml.Node) ([]Note, error) {
	c, err := field(src, spec, "imageScanCommit")
	if err != nil || c == nil || isNull(c) {
		return nil, err
	}
	if c.Kind != yaml.MappingNode {
		return nil, refuse(ReasonBadType, src.file, c.Line, "imageScanCommit must be a mapping")
	}
	g.lines["imageScanCommit"] = c.Line
	notes := unknownKeys(src, c, "imageScanCommit", "authorName", "authorEmail", "messageTemplate")
	return notes, readStrings(src, c, g.lines, stringDst{"authorName", &g.AuthorName}, stringDst{"authorEmail", &g.AuthorEmail}, stringDst{"messageTemplate", &g.MessageTemplate})
}
