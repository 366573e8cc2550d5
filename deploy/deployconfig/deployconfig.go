// Package deployconfig is the type of a repository's watch: section, owned by package deploy
// (deploy.Watch is this type) and kept apart from it so that package config can decode it
// without importing client-go.
package deployconfig

import "github.com/imagehook/imagehook/internal/confyaml"

// Watch is where a repository's GitOps tool runs.
type Watch struct {
	// Cluster names a clusters[] entry (read access to the applications and workloads is enough).
	Cluster string `yaml:"cluster"`
	// ArgoCD and Fleet are where Applications and GitRepos live (no namespace: not watched).
	ArgoCD Namespace `yaml:"argocd"`
	Fleet  Namespace `yaml:"fleet"`
	// Timeout bounds the wait for sync and rollout (0: 15m, set by deploy.New).
	Timeout confyaml.Duration `yaml:"timeout"`
	// Refresh asks the GitOps tool to look now after each push it follows (default true): Argo CD's
	// refresh annotation, Fleet's webhook commit.
	Refresh *bool `yaml:"refresh"`
}

// Namespace is a namespace to read in.
type Namespace struct {
	Namespace string `yaml:"namespace"`
}

// Refreshes reports whether imagehook asks the GitOps tool to look at the repository at once
// after each push it follows (watch.refresh; default true).
func (w *Watch) Refreshes() bool { return w != nil && (w.Refresh == nil || *w.Refresh) }
