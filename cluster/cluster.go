// Package cluster patches workloads directly through the Kubernetes API, for clusters that no GitOps
// tool watches: only the named container's image changes (a strategic-merge patch keyed by container
// name), a re-pushed identical tag restarts the pods through a pod-template annotation, and the
// rollout can be awaited.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/workload"
)

// RestartAnnotation is set on the pod template to restart pods when the image string is unchanged,
// as `kubectl rollout restart` does with its own key.
const RestartAnnotation = "imagehook.io/restartedAt"

// Errors a person can act on.
var (
	ErrForbidden = errors.New("forbidden")
	ErrNotFound  = errors.New("workload not found")
	ErrConflict  = errors.New("conflict")
	ErrTimeout   = errors.New("rollout timed out")
	ErrRollout   = errors.New("rollout failed")
)

// rolloutGVR serves Argo Rollouts, from the table of kinds.
var rolloutGVR = func() schema.GroupVersionResource { _, gvr, _ := kindOf("rollout"); return gvr }()

// RESTConfig loads a kubeconfig file (and context), or the in-cluster service account when path is "".
func RESTConfig(path, context string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (outside a cluster, give the cluster a kubeconfig): %w", err)
		}
		return cfg, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// Cluster is one Kubernetes API.
type Cluster struct {
	Name string
	// dyn serves every kind: the typed clientset would register all of Kubernetes' API groups at
	// start and cost ~9 MB of resident memory for the six kinds imagehook touches.
	dyn dynamic.Interface
	log *slog.Logger
	// PollInterval paces the rollout wait.
	PollInterval time.Duration
}

// New returns a client for cfg.
func New(name string, cfg *rest.Config, log *slog.Logger) (*Cluster, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "imagehook"
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.QPS == 0 {
		// client-go's default (5/s) would queue a release of a dozen workloads for seconds.
		cfg.QPS, cfg.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	return &Cluster{Name: name, dyn: dyn, log: log.With("cluster", name), PollInterval: time.Second}, nil
}

// Request is one direct update.
type Request struct {
	Kind, Name, Namespace, Container string
	Pushed                           imageref.Ref
	Pin                              imageref.Pin
	NoDowngrade                      bool
	RegistryAliases                  [][]string
	// WriteHost writes the pushed image's host where the workload runs the same path elsewhere.
	WriteHost bool
	// Wait, when positive, bounds the wait for the rollout.
	Wait time.Duration
}

// Result says what was done.
type Result struct {
	Old, New  string
	Restarted bool
	Rollout   string // "", "rolled out"
}

// PatchImage patches the container's image (or restarts the pods when it is already current) and
// optionally waits for the rollout.
func (c *Cluster) PatchImage(ctx context.Context, req Request) (Result, error) {
	var res Result
	kind := strings.ToLower(req.Kind)
	spec, err := c.podSpec(ctx, kind, req.Namespace, req.Name)
	if err != nil {
		return res, c.explain(err, "get", kind, req.Namespace, req.Name)
	}
	list, index, cur := findContainer(spec, req.Container)
	if index < 0 {
		return res, fmt.Errorf("%w: %s/%s in %s has no container %q", ErrNotFound, kind, req.Name, req.Namespace, req.Container)
	}
	curRef, err := imageref.Parse(cur)
	if err != nil {
		return res, fmt.Errorf("%s/%s container %s: current image: %w", kind, req.Name, req.Container, err)
	}
	next, err := imageref.NewValue(curRef, req.Pushed, imageref.Rules{Pin: req.Pin, WriteHost: req.WriteHost, NoDowngrade: req.NoDowngrade, RegistryAliases: req.RegistryAliases})
	if err != nil {
		return res, err
	}
	res.Old, res.New = cur, next
	var annotations map[string]string
	if next == cur {
		// The same image string (a re-pushed tag): restart the pods so they pull it again.
		annotations = map[string]string{RestartAnnotation: time.Now().UTC().Format(time.RFC3339)}
		res.Restarted = true
	}
	if err := c.patch(ctx, kind, req, list, index, next, annotations); err != nil {
		return res, c.explain(err, "patch", kind, req.Namespace, req.Name)
	}
	c.log.Info("patched workload", "kind", kind, "namespace", req.Namespace, "name", req.Name, "container", req.Container,
		"old", res.Old, "new", res.New, "restarted", res.Restarted)
	if req.Wait > 0 {
		if err := c.waitRollout(ctx, kind, req.Namespace, req.Name, req.Wait); err != nil {
			return res, err
		}
		res.Rollout = "rolled out"
	}
	return res, nil
}

// kindOf returns the table entry of a kind direct apply patches (package workload).
func kindOf(kind string) (workload.Kind, schema.GroupVersionResource, error) {
	k, ok := workload.Lookup(kind)
	if !ok || !k.Apply {
		return k, schema.GroupVersionResource{}, fmt.Errorf("kind %q: direct apply supports %s", kind, workload.Names(true))
	}
	return k, schema.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Resource}, nil
}

func (c *Cluster) get(ctx context.Context, kind, ns, name string) (*unstructured.Unstructured, error) {
	_, gvr, err := kindOf(kind)
	if err != nil {
		return nil, err
	}
	return c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
}

// podSpec reads the workload's pod spec.
func (c *Cluster) podSpec(ctx context.Context, kind, ns, name string) (*corev1.PodSpec, error) {
	u, err := c.get(ctx, kind, ns, name)
	if err != nil {
		return nil, err
	}
	k, _, _ := kindOf(kind)
	raw, found, err := unstructured.NestedMap(u.Object, k.PodSpec...)
	if err != nil || !found {
		return nil, fmt.Errorf("%s/%s: no pod spec", kind, name)
	}
	var spec corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s/%s: pod spec: %w", kind, name, err)
	}
	return &spec, nil
}

func findContainer(spec *corev1.PodSpec, name string) (list string, index int, image string) {
	for i, c := range spec.Containers {
		if c.Name == name {
			return "containers", i, c.Image
		}
	}
	for i, c := range spec.InitContainers {
		if c.Name == name {
			return "initContainers", i, c.Image
		}
	}
	return "", -1, ""
}

// patch changes only the container's image (and the restart annotation): a strategic-merge patch
// keyed by container name merges into the existing list, so nothing else in the object changes.
// Argo Rollouts are a custom resource without strategic-merge support: they get a JSON patch at the
// container's index, guarded by a test of its name.
func (c *Cluster) patch(ctx context.Context, kind string, req Request, list string, index int, image string, annotations map[string]string) error {
	k, gvr, err := kindOf(kind)
	if err != nil {
		return err
	}
	if k.JSONPatch {
		base := fmt.Sprintf("/spec/template/spec/%s/%d", list, index)
		ops := []map[string]any{
			{"op": "test", "path": base + "/name", "value": req.Container},
			{"op": "replace", "path": base + "/image", "value": image},
		}
		if annotations != nil {
			op, err := c.annotationOp(ctx, req, annotations)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		data, _ := json.Marshal(ops)
		_, err := c.dyn.Resource(gvr).Namespace(req.Namespace).Patch(ctx, req.Name, types.JSONPatchType, data, metav1.PatchOptions{FieldManager: "imagehook"})
		return err
	}
	template := map[string]any{"spec": map[string]any{list: []map[string]any{{"name": req.Container, "image": image}}}}
	if annotations != nil {
		template["metadata"] = map[string]any{"annotations": annotations}
	}
	var body map[string]any
	if kind == "cronjob" {
		body = map[string]any{"spec": map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{"template": template}}}}
	} else {
		body = map[string]any{"spec": map[string]any{"template": template}}
	}
	data, _ := json.Marshal(body)
	// The API server merges a strategic-merge patch of a built-in kind whatever client sends it.
	_, err = c.dyn.Resource(gvr).Namespace(req.Namespace).Patch(ctx, req.Name, types.StrategicMergePatchType, data,
		metav1.PatchOptions{FieldManager: "imagehook"})
	return err
}

// annotationOp adds the restart annotation to a Rollout's pod template with a JSON patch, whose
// "add" needs the parent object to exist: it adds the key, the annotations map or the metadata,
// whichever is missing.
func (c *Cluster) annotationOp(ctx context.Context, req Request, annotations map[string]string) (map[string]any, error) {
	u, err := c.dyn.Resource(rolloutGVR).Namespace(req.Namespace).Get(ctx, req.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if _, found, _ := unstructured.NestedMap(u.Object, "spec", "template", "metadata", "annotations"); found {
		return map[string]any{"op": "add", "path": "/spec/template/metadata/annotations/" + strings.ReplaceAll(RestartAnnotation, "/", "~1"),
			"value": annotations[RestartAnnotation]}, nil
	}
	if _, found, _ := unstructured.NestedMap(u.Object, "spec", "template", "metadata"); found {
		return map[string]any{"op": "add", "path": "/spec/template/metadata/annotations", "value": annotations}, nil
	}
	return map[string]any{"op": "add", "path": "/spec/template/metadata", "value": map[string]any{"annotations": annotations}}, nil
}

// explain turns API errors into ones that say what to fix.
func (c *Cluster) explain(err error, verb, kind, ns, name string) error {
	resource := kind + "s"
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: imagehook may not %s %s in namespace %s on cluster %s (grant it with a Role): %v", ErrForbidden, verb, resource, ns, c.Name, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %s/%s in namespace %s on cluster %s", ErrNotFound, kind, name, ns, c.Name)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w: %s/%s in %s changed meanwhile: %v", ErrConflict, kind, name, ns, err)
	}
	return fmt.Errorf("%s %s/%s in %s on cluster %s: %w", verb, kind, name, ns, c.Name, err)
}

// WaitRollout waits until the workload has rolled out: the check direct apply makes, for deploy
// tracking after a GitOps tool synced a commit.
func (c *Cluster) WaitRollout(ctx context.Context, kind, ns, name string, timeout time.Duration) error {
	return c.waitRollout(ctx, kind, ns, name, timeout)
}

// Dynamic is the cluster's dynamic client, for the kinds imagehook only reads (GitOps tools' CRDs).
func (c *Cluster) Dynamic() dynamic.Interface { return c.dyn }

// waitRollout polls the workload's status until the controller has seen the new generation and
// all replicas are updated and available, the deployment reports a failed progress, or timeout.
func (c *Cluster) waitRollout(ctx context.Context, kind, ns, name string, timeout time.Duration) error {
	// The deadline is kept apart from the API calls' context, so that a call cut short by it is
	// reported as the rollout timing out, not as an API error.
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(c.PollInterval)
	defer tick.Stop()
	for {
		done, err := c.rolledOut(ctx, kind, ns, name)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%w: %s/%s in %s not rolled out after %s", ErrTimeout, kind, name, ns, timeout)
		case <-tick.C:
		}
	}
}

func (c *Cluster) rolledOut(ctx context.Context, kind, ns, name string) (bool, error) {
	if kind != "deployment" && kind != "statefulset" && kind != "daemonset" {
		// CronJobs and ReplicaSets have no rollout to wait for; Rollouts report through their own CRD.
		return true, nil
	}
	u, err := c.get(ctx, kind, ns, name)
	if err != nil {
		return false, c.explain(err, "get", kind, ns, name)
	}
	num := func(path ...string) int64 {
		v, _, _ := unstructured.NestedInt64(u.Object, path...)
		return v
	}
	observed := num("status", "observedGeneration") >= u.GetGeneration()
	want, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if !found {
		want = 1
	}
	switch kind {
	case "deployment":
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, cnd := range conds {
			m, _ := cnd.(map[string]any)
			if m["type"] == "Progressing" && m["status"] == "False" && m["reason"] == "ProgressDeadlineExceeded" {
				return false, fmt.Errorf("%w: %v", ErrRollout, m["message"])
			}
		}
		return observed && num("status", "updatedReplicas") == want && num("status", "availableReplicas") == want &&
			num("status", "replicas") == want, nil
	case "statefulset":
		return observed && num("status", "updatedReplicas") == want && num("status", "readyReplicas") == want, nil
	default: // daemonset
		desired := num("status", "desiredNumberScheduled")
		return observed && num("status", "updatedNumberScheduled") == desired && num("status", "numberAvailable") == desired, nil
	}
}

// Applier is the updater's direct-apply step over the configured clusters.
type Applier struct {
	Clusters map[string]*Cluster
	// RegistryAliases groups registry hosts that serve the same repositories (see manifests).
	RegistryAliases [][]string
}

// Apply patches the target on its cluster and reports the step.
func (a *Applier) Apply(ctx context.Context, t event.Target, ev *event.Event) (event.Step, error) {
	st := event.Step{Name: event.StepApply, Cluster: t.Cluster}
	c, ok := a.Clusters[t.Cluster]
	if !ok {
		return st, fmt.Errorf("no cluster named %q is configured", t.Cluster)
	}
	ref, err := workload.Parse(t.Workload)
	if err != nil {
		return st, err
	}
	kind, name := strings.ToLower(ref.Kind.Name), ref.Name
	pushed, err := imageref.Parse(ev.Push.Ref())
	if err != nil {
		return st, err
	}
	res, err := c.PatchImage(ctx, Request{Kind: kind, Name: name, Namespace: t.Namespace, Container: t.Container,
		Pushed: pushed, Pin: imageref.Pin(ev.Pin), NoDowngrade: ev.NoDowngrade, RegistryAliases: a.RegistryAliases,
		WriteHost: ev.Push.ExplicitHost, Wait: t.WaitRollout})
	if imageref.Skipped(err) {
		st.Status, st.Detail = event.Ignored, err.Error()
		return st, nil
	}
	if res.New != "" {
		st.Changes = []event.Change{{Workload: t.Workload, Namespace: t.Namespace, Container: t.Container, Old: res.Old, New: res.New}}
	}
	switch {
	case err != nil && res.New != "" && (errors.Is(err, ErrTimeout) || errors.Is(err, ErrRollout)):
		st.Detail = "patched; rollout: " + err.Error()
		return st, err
	case err != nil:
		return st, err
	}
	st.Status = event.Succeeded
	st.Detail = "patched"
	if res.Restarted {
		st.Detail = "same image: pods restarted through " + RestartAnnotation
	}
	if res.Rollout != "" {
		st.Detail += "; " + res.Rollout
	}
	return st, nil
}
