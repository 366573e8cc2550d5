// Package manifesttest generates the manifests that imagehook's tests and load runs read: a
// vendored install bundle with the target among thousands of CRDs, and files colleagues could
// commit to cost as much as a file can.
package manifesttest

import (
	"fmt"
	"strings"
	"testing/fstest"
)

// CRDBundle is a vendored upstream install bundle: 3,000 CRDs of about 880 bytes each (2.6 MB)
// and, among them, the deployment, as Argo CD's, kserve's or spark-operator's install.yaml are.
func CRDBundle(deploy string) string {
	var b strings.Builder
	for i := range 3000 {
		if i == 1700 {
			b.WriteString("---\n" + deploy)
		}
		fmt.Fprintf(&b, `---
# Source: bundle/templates/crds/widget-%04[1]d.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets%04[1]d.example.com
  annotations:
    controller-gen.kubebuilder.io/version: v0.16.0
spec:
  group: example.com
  names:
    kind: Widget%04[1]d
    listKind: Widget%04[1]dList
    plural: widgets%04[1]d
    singular: widget%04[1]d
    shortNames: [wd%04[1]d]
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          description: Widget%04[1]d runs a web server, described at the length controller-gen writes.
          type: object
          properties:
            spec:
              type: object
              properties:
                replicas: {type: integer, format: int32}
                image: {type: string, description: "the image to run, e.g. acme/web:1.0"}
`, i)
	}
	return b.String()
}

// BundleDeploy is the deployment in the bundle, with the comments and quoting a splice must keep.
const BundleDeploy = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # the one to update
  namespace: team
spec:
  template:
    spec:
      containers:
        - name: app
          image: "registry.example.com/acme/web:1.0.0" # pinned by CI
`

// HostileFiles are twelve files of size bytes that mention the workload, each shaped to cost as
// much as a file can when decoded: dense flow collections, aliases, CR-only and CRLF line breaks,
// compact sequences, implicit flow pairs, a dense second document, and thousands of copies of the
// workload (which would be kept), a copy of deploy in another namespace.
func HostileFiles(size int, deploy string) map[string]string {
	other := strings.ReplaceAll(deploy, "namespace: team", "namespace: other")
	rep := func(head, unit, tail string) string { return head + strings.Repeat(unit, size/len(unit)) + tail }
	return map[string]string{
		"hostile-01-dense-seq.yaml":   rep("# web\nweb: [", "1,", "1]\n"),
		"hostile-02-dense-map.yaml":   rep("# web\n{", "a: 1, ", "web: 1}\n"),
		"hostile-03-lines.yaml":       rep("# web\n", "web: [web, web, web, web, web, web, web, web, web, web]\n", ""),
		"hostile-04-aliases.yaml":     rep("a: &a web\nl: [", "*a, ", "*a]\n"),
		"hostile-05-crlf.yaml":        rep("# web\r\n", "k: web\r\n", ""),
		"hostile-06-lone-cr.yaml":     rep("# web\r", "? web\r", ""),
		"hostile-07-nested.yaml":      rep("# web\n[", "[web, web], ", "[]]\n"),
		"hostile-08-second-doc.yaml":  rep(other+"---\n[", "1,", "1]\n"),
		"hostile-09-compact.yaml":     rep("# web\n", "- - - - web\n", ""),
		"hostile-10-copies.yaml":      rep("", other+"---\n", ""),
		"hostile-11-flow-pairs.yaml":  rep("# web\n[", "web: 1, ", "web: 1]\n"),
		"hostile-12-flow-in-seq.yaml": rep("web:\n", "  - {a: web, b: web, c: web}\n", ""),
	}
}

// Stages is a manifests repository with one website Deployment per environment, at
// envs/<env>/website/deployment.yaml, each running website:1.0.0: what promotion tests move
// images through.
func Stages(envs ...string) fstest.MapFS {
	fs := fstest.MapFS{}
	for _, env := range envs {
		fs["envs/"+env+"/website/deployment.yaml"] = &fstest.MapFile{Data: []byte(`# ` + env + `: comments and layout stay
apiVersion: apps/v1
kind: Deployment
metadata: {name: website}
spec:
  template:
    spec:
      containers:
        - name: website
          image: registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:1.0.0
`)}
	}
	return fs
}
