package manifesttest

import "strings"

// GitOpsCRDs returns faithful subsets of the GitOps tools' published CRDs, as objects to create
// on a test apiserver: Argo CD's Application (argoproj.io/v1alpha1, no status subresource, as Argo
// CD ships it) and Fleet's GitRepo (fleet.cattle.io/v1alpha1, with its status subresource, which
// Fleet's webhook receiver writes through). Group, kind, scope and subresources are theirs; spec
// and status are left open (the real schemas are large, and imagehook reads a handful of fields).
func GitOpsCRDs() []map[string]any {
	return []map[string]any{
		crd("argoproj.io", "Application", "applications", false),
		crd("fleet.cattle.io", "GitRepo", "gitrepos", true),
	}
}

func crd(group, kind, plural string, statusSubresource bool) map[string]any {
	version := map[string]any{"name": "v1alpha1", "served": true, "storage": true,
		"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
	if statusSubresource {
		version["subresources"] = map[string]any{"status": map[string]any{}}
	}
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{"group": group, "scope": "Namespaced", "versions": []any{version},
			"names": map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind), "listKind": kind + "List"}},
	}
}
