package manifests

import (
	"go.yaml.in/yaml/v3"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// kyaml finds, imagehook splices. Every structural read — kind, name, namespace, the pod spec and
// its containers, a kustomization's images and namespace, Helm values by key path — goes through
// kyaml's RNode, on documents decoded from the whole file by parseAll, so that node positions stay
// absolute for the splice. kyaml's kio readers are never used: they split the file and decode each
// document alone (positions in later documents would be relative to their document), expand aliases
// and merge keys, unwrap kind: List, and drop a document after a "..." line. Nothing is written
// through kyaml: its writer re-serialises whole files.

// rnode wraps a decoded node for kyaml's reads.
func rnode(n *yaml.Node) *kyaml.RNode {
	if n == nil {
		return nil
	}
	return kyaml.NewRNode(n)
}

// lookupPath returns the node at a path of mapping keys under n, or nil.
func lookupPath(n *yaml.Node, path ...string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	got, err := rnode(n).Pipe(kyaml.Lookup(path...))
	if err != nil || got == nil {
		return nil
	}
	return got.YNode()
}

// lookup returns the value of key in a mapping node, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node { return lookupPath(m, key) }

// scalar returns the raw text of the scalar at a path — "2.10" stays "2.10", where kyaml's
// GetString would refuse a value that does not read as a string. Anything but a scalar gives "":
// an alias's value is its anchor's name, so `name: *web` never names a container "web".
func scalar(m *yaml.Node, path ...string) string {
	n := lookupPath(m, path...)
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// meta reads a document's kind, name and namespace through kyaml's lookups, with the rule of
// scalar: an alias names nothing (RNode's GetKind/GetName/GetNamespace would give an alias's anchor
// name, so they are not used).
func meta(doc *yaml.Node) (kind, name, namespace string) {
	if doc == nil || doc.Kind != yaml.MappingNode {
		return "", "", ""
	}
	return scalar(doc, "kind"), scalar(doc, "metadata", "name"), scalar(doc, "metadata", "namespace")
}

// elements returns every element of the sequence at path (VisitElements: not only the first match,
// as MatchElement would give), or nil.
func elements(n *yaml.Node, path ...string) []*yaml.Node {
	seq := lookupPath(n, path...)
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil
	}
	var out []*yaml.Node
	_ = rnode(seq).VisitElements(func(e *kyaml.RNode) error {
		out = append(out, e.YNode())
		return nil
	})
	return out
}

// yaml11NonString reports whether a plain scalar v would read as something other than a string to
// a YAML 1.1 reader (kubectl, kustomize, Helm): on, yes, y, 010, 1e3 are written quoted.
func yaml11NonString(v string) bool { return kyaml.IsValueNonString(v) }
