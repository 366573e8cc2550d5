package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/internal/kubetest"
)

var (
	admin *rest.Config
	kube  kubernetes.Interface
)

// TestMain starts one real etcd + kube-apiserver for the package; each test uses its own namespace.
func TestMain(m *testing.M) {
	env, err := kubetest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster tests need a real kube-apiserver:", err)
		os.Exit(1)
	}
	admin = env.Admin
	kube = kubernetes.NewForConfigOrDie(admin)
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
	if _, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func newCluster(t *testing.T, cfg *rest.Config) *Cluster {
	t.Helper()
	c, err := New("test", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.PollInterval = 20 * time.Millisecond
	return c
}

func ref(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var always = corev1.ContainerRestartPolicyAlways

// podTemplate has an app container, a sidecar, and a restartable init sidecar: only the targeted
// image may change.
func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "proxy", Image: "envoyproxy/envoy:v1.30.0", RestartPolicy: &always}},
			Containers: []corev1.Container{
				{Name: "app", Image: "acme/web:1.0", ImagePullPolicy: corev1.PullIfNotPresent},
				{Name: "log", Image: "fluent/fluent-bit:3.1", Args: []string{"-c", "/cfg"}},
			},
		},
	}
}

func create(t *testing.T, kind, ns string) {
	t.Helper()
	ctx := context.Background()
	meta := metav1.ObjectMeta{Name: "web", Namespace: ns}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	var err error
	switch kind {
	case "deployment":
		_, err = kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Selector: sel, Template: podTemplate()}}, metav1.CreateOptions{})
	case "statefulset":
		_, err = kube.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: podTemplate()}}, metav1.CreateOptions{})
	case "daemonset":
		_, err = kube.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: podTemplate()}}, metav1.CreateOptions{})
	case "replicaset":
		_, err = kube.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: podTemplate()}}, metav1.CreateOptions{})
	case "replicationcontroller":
		tmpl := podTemplate()
		_, err = kube.CoreV1().ReplicationControllers(ns).Create(ctx, &corev1.ReplicationController{ObjectMeta: meta,
			Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": "web"}, Template: &tmpl}}, metav1.CreateOptions{})
	case "cronjob":
		tmpl := podTemplate()
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
		_, err = kube.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{Schedule: "0 * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readTemplate(t *testing.T, kind, ns string) corev1.PodTemplateSpec {
	t.Helper()
	ctx := context.Background()
	get := metav1.GetOptions{}
	switch kind {
	case "deployment":
		o, err := kube.AppsV1().Deployments(ns).Get(ctx, "web", get)
		must(t, err)
		return o.Spec.Template
	case "statefulset":
		o, err := kube.AppsV1().StatefulSets(ns).Get(ctx, "web", get)
		must(t, err)
		return o.Spec.Template
	case "daemonset":
		o, err := kube.AppsV1().DaemonSets(ns).Get(ctx, "web", get)
		must(t, err)
		return o.Spec.Template
	case "replicaset":
		o, err := kube.AppsV1().ReplicaSets(ns).Get(ctx, "web", get)
		must(t, err)
		return o.Spec.Template
	case "replicationcontroller":
		o, err := kube.CoreV1().ReplicationControllers(ns).Get(ctx, "web", get)
		must(t, err)
		return *o.Spec.Template
	case "cronjob":
		o, err := kube.BatchV1().CronJobs(ns).Get(ctx, "web", get)
		must(t, err)
		return o.Spec.JobTemplate.Spec.Template
	}
	t.Fatalf("kind %s", kind)
	return corev1.PodTemplateSpec{}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestEveryKind patches the app container and the init sidecar of every kind and checks that
// nothing else in the pod template changed.
func TestEveryKind(t *testing.T) {
	c := newCluster(t, admin)
	for _, kind := range []string{"deployment", "statefulset", "daemonset", "replicaset", "replicationcontroller", "cronjob"} {
		t.Run(kind, func(t *testing.T) {
			ns := namespace(t)
			create(t, kind, ns)
			before := readTemplate(t, kind, ns)
			res, err := c.PatchImage(context.Background(), Request{Kind: kind, Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "docker.io/acme/web:1.1")})
			if err != nil {
				t.Fatal(err)
			}
			if res.Old != "acme/web:1.0" || res.New != "acme/web:1.1" || res.Restarted {
				t.Errorf("result = %+v", res)
			}
			if _, err := c.PatchImage(context.Background(), Request{Kind: kind, Name: "web", Namespace: ns, Container: "proxy", Pushed: ref(t, "envoyproxy/envoy:v1.31.0")}); err != nil {
				t.Fatal(err)
			}
			after := readTemplate(t, kind, ns)
			want := before.DeepCopy()
			want.Spec.Containers[0].Image = "acme/web:1.1"
			want.Spec.InitContainers[0].Image = "envoyproxy/envoy:v1.31.0"
			if !apiequality.Semantic.DeepEqual(after, *want) {
				t.Errorf("pod template changed beyond the images:\n got %v\nwant %v", after, *want)
			}
			if after.Spec.InitContainers[0].RestartPolicy == nil || *after.Spec.InitContainers[0].RestartPolicy != always {
				t.Error("the init sidecar lost its restartPolicy")
			}
		})
	}
}

func TestSameTagRestartsPods(t *testing.T) {
	c := newCluster(t, admin)
	ns := namespace(t)
	create(t, "deployment", ns)
	res, err := c.PatchImage(context.Background(), Request{Kind: "Deployment", Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "acme/web:1.0")})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := readTemplate(t, "deployment", ns)
	if !res.Restarted || tmpl.Annotations[RestartAnnotation] == "" || tmpl.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("res %+v, annotations %v, pull policy %s", res, tmpl.Annotations, tmpl.Spec.Containers[0].ImagePullPolicy)
	}
	// With a digest and pin: digest, the re-pushed tag is written as tag@digest instead.
	d := "sha256:" + strings.Repeat("ab", 32)
	if _, err := c.PatchImage(context.Background(), Request{Kind: "Deployment", Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "acme/web:1.0@"+d), Pin: "digest"}); err != nil {
		t.Fatal(err)
	}
	if got := readTemplate(t, "deployment", ns).Spec.Containers[0].Image; got != "acme/web:1.0@"+d {
		t.Errorf("image = %s", got)
	}
}

// TestLeastPrivilege uses a ServiceAccount token whose Role allows namespace A only.
func TestLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	a, b := namespace(t), namespace(t)
	create(t, "deployment", a)
	create(t, "deployment", b)
	_, err := kube.CoreV1().ServiceAccounts(a).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "imagehook"}}, metav1.CreateOptions{})
	must(t, err)
	_, err = kube.RbacV1().Roles(a).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "imagehook"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "patch"}}}}, metav1.CreateOptions{})
	must(t, err)
	_, err = kube.RbacV1().RoleBindings(a).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "imagehook"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "imagehook"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "imagehook", Namespace: a}}}, metav1.CreateOptions{})
	must(t, err)
	tok, err := kube.CoreV1().ServiceAccounts(a).CreateToken(ctx, "imagehook", &authv1.TokenRequest{}, metav1.CreateOptions{})
	must(t, err)
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tok.Status.Token
	c := newCluster(t, cfg)
	if _, err := c.PatchImage(ctx, Request{Kind: "deployment", Name: "web", Namespace: a, Container: "app", Pushed: ref(t, "acme/web:2")}); err != nil {
		t.Fatalf("namespace A: %v", err)
	}
	_, err = c.PatchImage(ctx, Request{Kind: "deployment", Name: "web", Namespace: b, Container: "app", Pushed: ref(t, "acme/web:2")})
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "namespace "+b) || !strings.Contains(err.Error(), "deployments") {
		t.Errorf("namespace B: err = %v, want forbidden naming the namespace and resource", err)
	}
	if got := readTemplate(t, "deployment", b).Spec.Containers[0].Image; got != "acme/web:1.0" {
		t.Errorf("namespace B changed: %s", got)
	}
}

func TestNotFound(t *testing.T) {
	c := newCluster(t, admin)
	ns := namespace(t)
	create(t, "deployment", ns)
	must(t, kube.AppsV1().Deployments(ns).Delete(context.Background(), "web", metav1.DeleteOptions{}))
	_, err := c.PatchImage(context.Background(), Request{Kind: "deployment", Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "acme/web:2")})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted workload: err = %v", err)
	}
	create(t, "deployment", ns)
	_, err = c.PatchImage(context.Background(), Request{Kind: "deployment", Name: "web", Namespace: ns, Container: "nope", Pushed: ref(t, "acme/web:2")})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing container: err = %v", err)
	}
}

// TestRolloutWait simulates the deployment controller by writing the status subresource.
func TestRolloutWait(t *testing.T) {
	c := newCluster(t, admin)
	ctx := context.Background()
	t.Run("rolled out", func(t *testing.T) {
		ns := namespace(t)
		create(t, "deployment", ns)
		go simulateRollout(ns, "web", 2)
		res, err := c.PatchImage(ctx, Request{Kind: "deployment", Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "acme/web:3"), Wait: 10 * time.Second})
		if err != nil || res.Rollout != "rolled out" {
			t.Errorf("res %+v, err %v", res, err)
		}
	})
	t.Run("timed out", func(t *testing.T) {
		ns := namespace(t)
		create(t, "deployment", ns)
		_, err := c.PatchImage(ctx, Request{Kind: "deployment", Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "acme/web:3"), Wait: 300 * time.Millisecond})
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("err = %v, want timeout", err)
		}
	})
}

// TestApplierStep checks the updater-facing step for success and a failed rollout.
func TestApplierStep(t *testing.T) {
	c := newCluster(t, admin)
	ns := namespace(t)
	create(t, "deployment", ns)
	a := &Applier{Clusters: map[string]*Cluster{"test": c}}
	ev := &event.Event{Push: event.Push{Image: "acme/web:4"}}
	st, err := a.Apply(context.Background(), event.Target{Cluster: "test", Workload: "deployment/web", Namespace: ns, Container: "app"}, ev)
	if err != nil || st.Status != event.Succeeded || st.Changes[0].New != "acme/web:4" {
		t.Errorf("step %+v, err %v", st, err)
	}
	if _, err := a.Apply(context.Background(), event.Target{Cluster: "nope", Workload: "deployment/web"}, ev); err == nil {
		t.Error("unknown cluster accepted")
	}
}

// TestArgoRollout patches a Rollout custom resource with a JSON patch.
func TestArgoRollout(t *testing.T) {
	ctx := context.Background()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "rollouts.argoproj.io"},
		"spec": map[string]any{"group": "argoproj.io", "scope": "Namespaced",
			"names": map[string]any{"plural": "rollouts", "singular": "rollout", "kind": "Rollout"},
			"versions": []any{map[string]any{"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}
	c := newCluster(t, admin)
	crdGVR := rolloutGVR
	crdGVR.Group, crdGVR.Version, crdGVR.Resource = "apiextensions.k8s.io", "v1", "customresourcedefinitions"
	if _, err := c.dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := namespace(t)
	ro := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": map[string]any{"name": "web", "namespace": ns},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "log", "image": "fluent/fluent-bit:3.1"},
			map[string]any{"name": "app", "image": "acme/web:1.0"}}}}}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.dyn.Resource(rolloutGVR).Namespace(ns).Create(ctx, ro, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create rollout: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the CRD becomes served shortly after creation
	}
	res, err := c.PatchImage(ctx, Request{Kind: "Rollout", Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "acme/web:1.1")})
	if err != nil || res.New != "acme/web:1.1" {
		t.Fatalf("res %+v, err %v", res, err)
	}
	got, err := c.dyn.Resource(rolloutGVR).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	containers, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
	if fmt.Sprint(containers) != "[map[image:fluent/fluent-bit:3.1 name:log] map[image:acme/web:1.1 name:app]]" {
		t.Errorf("containers = %v", containers)
	}
	// The same tag again restarts the pods: the template had no metadata, twice over.
	for range 2 {
		res, err = c.PatchImage(ctx, Request{Kind: "Rollout", Name: "web", Namespace: ns, Container: "app", Pushed: ref(t, "acme/web:1.1")})
		if err != nil || !res.Restarted {
			t.Fatalf("restart: %+v %v", res, err)
		}
	}
	got, err = c.dyn.Resource(rolloutGVR).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if v, _, _ := unstructured.NestedString(got.Object, "spec", "template", "metadata", "annotations", RestartAnnotation); v == "" {
		t.Errorf("no restart annotation: %v", got.Object["spec"])
	}
}

// BenchmarkPatch measures webhook-to-patched for direct apply: read, patch, against the real
// apiserver on loopback (no rollout wait).
func BenchmarkPatch(b *testing.B) {
	cfg := rest.CopyConfig(admin)
	cfg.QPS, cfg.Burst = 10000, 10000 // measure the round trips, not the client's politeness limiter
	c, err := New("bench", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ns := fmt.Sprintf("bench-%d", time.Now().UnixNano()%100000)
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: podTemplate()}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		pushed, _ := imageref.Parse(fmt.Sprintf("acme/web:1.%d", i))
		if _, err := c.PatchImage(ctx, Request{Kind: "deployment", Name: "web", Namespace: ns, Container: "app", Pushed: pushed}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExampleRBACIsEnough applies examples/kubernetes/rbac-web.yaml as shipped and patches (and
// waits for) a Deployment with the imagehook ServiceAccount's token: the least-privilege Role
// must be all imagehook needs.
func TestExampleRBACIsEnough(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile("../examples/kubernetes/rbac-web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"web", "imagehook"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	if _, err := kube.CoreV1().ServiceAccounts("imagehook").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "imagehook"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: obj}
		gvr := rbacv1.SchemeGroupVersion.WithResource(strings.ToLower(u.GetKind()) + "s")
		dyn := dynamic.NewForConfigOrDie(admin)
		if _, err := dyn.Resource(gvr).Namespace("web").Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("apply %s: %v", u.GetKind(), err)
		}
	}
	create(t, "deployment", "web")
	tok, err := kube.CoreV1().ServiceAccounts("imagehook").CreateToken(ctx, "imagehook", &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tok.Status.Token
	c := newCluster(t, cfg)
	go simulateRollout("web", "web", 2)
	res, err := c.PatchImage(ctx, Request{Kind: "deployment", Name: "web", Namespace: "web", Container: "app", Pushed: ref(t, "acme/web:9"), Wait: 10 * time.Second})
	if err != nil || res.Rollout != "rolled out" {
		t.Fatalf("with the example Role: %+v %v", res, err)
	}
	for _, kind := range []string{"statefulset", "daemonset", "cronjob"} {
		create(t, kind, "web")
		if _, err := c.PatchImage(ctx, Request{Kind: kind, Name: "web", Namespace: "web", Container: "app", Pushed: ref(t, "acme/web:9")}); err != nil {
			t.Errorf("%s with the example Role: %v", kind, err)
		}
	}
}

// simulateRollout plays the deployment controller, which does not run here: once the Deployment
// reaches generation gen, its status reports every replica updated and available.
func simulateRollout(ns, name string, gen int64) {
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || d.Generation < gen {
			continue
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
		if _, err := kube.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err == nil {
			return
		}
	}
}
