// Package workload is the one table of the Kubernetes workload kinds imagehook updates: where each
// keeps its pod spec, and which API resource serves it. Config validation, the manifest rewrite and
// direct apply all read this table, so their lists of kinds cannot drift apart.
package workload

import (
	"fmt"
	"strings"
)

// Kind is one workload kind.
type Kind struct {
	// Name is the kind as manifests spell it: "Deployment".
	Name string
	// PodSpec is the path of mapping keys from the document root to the pod spec.
	PodSpec []string
	// Group, Version and Resource name the API resource for direct apply.
	Group, Version, Resource string
	// Apply says whether direct apply patches this kind (a Job's or a Pod's template cannot be
	// changed in place).
	Apply bool
	// JSONPatch marks a custom resource without strategic-merge support (Argo Rollouts).
	JSONPatch bool
}

var template = []string{"spec", "template", "spec"}

// kinds is the table.
var kinds = []Kind{
	{Name: "Deployment", PodSpec: template, Group: "apps", Version: "v1", Resource: "deployments", Apply: true},
	{Name: "StatefulSet", PodSpec: template, Group: "apps", Version: "v1", Resource: "statefulsets", Apply: true},
	{Name: "DaemonSet", PodSpec: template, Group: "apps", Version: "v1", Resource: "daemonsets", Apply: true},
	{Name: "ReplicaSet", PodSpec: template, Group: "apps", Version: "v1", Resource: "replicasets", Apply: true},
	{Name: "ReplicationController", PodSpec: template, Version: "v1", Resource: "replicationcontrollers", Apply: true},
	{Name: "Job", PodSpec: template, Group: "batch", Version: "v1", Resource: "jobs"},
	{Name: "CronJob", PodSpec: []string{"spec", "jobTemplate", "spec", "template", "spec"}, Group: "batch", Version: "v1", Resource: "cronjobs", Apply: true},
	{Name: "Pod", PodSpec: []string{"spec"}, Version: "v1", Resource: "pods"},
	{Name: "Rollout", PodSpec: template, Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts", Apply: true, JSONPatch: true},
}

// Lookup returns the kind named (any case).
func Lookup(name string) (Kind, bool) {
	for _, k := range kinds {
		if strings.EqualFold(k.Name, name) {
			return k, true
		}
	}
	return Kind{}, false
}

// Names lists the kinds, for messages; with apply, only those direct apply patches.
func Names(apply bool) string {
	var out []string
	for _, k := range kinds {
		if !apply || k.Apply {
			out = append(out, k.Name)
		}
	}
	return strings.Join(out, ", ")
}

// Ref is one workload: its kind and name.
type Ref struct {
	Kind Kind
	Name string
}

// String returns "kind/name" in lower case kind, as targets are written.
func (r Ref) String() string { return strings.ToLower(r.Kind.Name) + "/" + r.Name }

// Parse reads "kind/name" (kind in any case) and checks the kind is one of the table.
func Parse(s string) (Ref, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok || kind == "" || name == "" || strings.Contains(name, "/") {
		return Ref{}, fmt.Errorf("workload %q: want kind/name", s)
	}
	k, ok := Lookup(kind)
	if !ok {
		return Ref{}, fmt.Errorf("workload %q: %q is not a workload kind (want %s)", s, kind, Names(false))
	}
	return Ref{Kind: k, Name: name}, nil
}
