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
		g = &GitRepo{File: file, lines: map[string]int{"kind": root.Line}}
		if meta, err := field(src, root, "metadata"); err != nil {
			return nil, notes, err
		} else if meta != nil && meta.Kind == yaml.MappingNode {
			for _, f := range []struct {
				key string
				dst *string
			}{{"name", &g.Name}, {"namespace", &g.Namespace}} {
				v, line, err := stringField(src, meta, f.key)
				if err != nil {
					return nil, notes, err
				}
				*f.dst, g.lines[f.key] = v, line
			}
		}
		spec, err := field(src, root, "spec")
		if err != nil {
			return nil, notes, err
		}
		if spec == nil || spec.Kind != yaml.MappingNode {
			return nil, notes, refuse(ReasonInvalid, file, root.Line, "the GitRepo has no spec")
		}
		for _, f := range []struct {
			key string
			dst *string
		}{{"repo", &g.Repo}, {"branch", &g.Branch}, {"revision", &g.Revision}, {"clientSecretName", &g.ClientSecretName}, {"imageScanInterval", &g.ImageScanInterval}} {
			v, line, err := stringField(src, spec, f.key)
			if err != nil {
				return nil, notes, err
			}
			*f.dst, g.lines[f.key] = v, line
		}
		if p, err := field(src, spec, "paths"); err != nil {
			return nil, notes, err
		} else if p != nil && !isNull(p) {
			if p.Kind != yaml.SequenceNode {
				return nil, notes, refuse(ReasonBadType, file, p.Line, "paths must be a list")
			}
			g.lines["paths"] = p.Line
			for _, e := range p.Content {
				if e.Kind != yaml.ScalarNode || isNull(e) {
					return nil, notes, refuse(ReasonBadType, file, e.Line, "paths: each path must be text")
				}
				g.Paths = append(g.Paths, e.Value)
			}
		}
		c, err := field(src, spec, "imageScanCommit")
		if err != nil {
			return nil, notes, err
		}
		if c != nil && !isNull(c) {
			if c.Kind != yaml.MappingNode {
				return nil, notes, refuse(ReasonBadType, file, c.Line, "imageScanCommit must be a mapping")
			}
			g.lines["imageScanCommit"] = c.Line
			notes = append(notes, unknownKeys(src, c, "imageScanCommit", "authorName", "authorEmail", "messageTemplate")...)
			for _, f := range []struct {
				key string
				dst *string
			}{{"authorName", &g.AuthorName}, {"authorEmail", &g.AuthorEmail}, {"messageTemplate", &g.MessageTemplate}} {
				v, line, err := stringField(src, c, f.key)
				if err != nil {
					return nil, notes, err
				}
				*f.dst, g.lines[f.key] = v, line
			}
		}
	}
	if g == nil {
		return nil, notes, refuse(ReasonInvalid, file, 0, "no object of kind GitRepo in the file")
	}
	return g, notes, nil
}
