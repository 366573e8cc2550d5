package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// genTree writes n deployment files in n/100 directories, the shape of a big GitOps monorepo.
func genTree(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	for i := range n {
		d := filepath.Join(dir, "apps", fmt.Sprintf("team-%02d", i/100), fmt.Sprintf("app-%04d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		doc := fmt.Sprintf(`# app %[1]d
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%04[1]d
  namespace: team-%02[2]d
  labels: {app: app-%04[1]d}
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: app
          image: registry.example.com/acme/app-%04[1]d:1.0.%[1]d
          resources: {limits: {memory: 128Mi}}
        - name: proxy
          image: envoyproxy/envoy:v1.30.0
`, i, i/100)
		if err := os.WriteFile(filepath.Join(d, "deployment.yaml"), []byte(doc), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkSetImage5000 locates and rewrites one workload in a 5,000-file tree, searching the whole
// tree as a target with path "." does.
func BenchmarkSetImage5000(b *testing.B) {
	dir := genTree(b, 5000)
	fsys := os.DirFS(dir)
	pushed := mustRef(b, "registry.example.com/acme/app-4321:2.0.0")
	target := Selector{Kind: "Deployment", Name: "app-4321", Namespace: "team-43", Container: "app"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := RewriteSelected(fsys, ".", target, pushed, Options{})
		if err != nil || len(res.Files) != 1 {
			b.Fatalf("%v %v", err, res)
		}
	}
}

// BenchmarkSplice rewrites one value in one file, including the re-parse that verifies it.
func BenchmarkSplice(b *testing.B) {
	dir := genTree(b, 1)
	fsys := os.DirFS(dir)
	pushed := mustRef(b, "registry.example.com/acme/app-0000:2.0.0")
	target := Selector{Kind: "Deployment", Name: "app-0000", Container: "app"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RewriteSelected(fsys, ".", target, pushed, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
