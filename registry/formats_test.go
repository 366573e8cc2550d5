package registry

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParsers runs every captured push payload of the supported formats through its parser.
func TestParsers(t *testing.T) {
	tests := []struct {
		file, source, query string
		registryHost        string
		image, digest       string
		pusher              string
		warn                bool
	}{
		{file: "aliyun/aliyun-acr.official-doc.json", source: "aliyun",
			image: "registry.cn-hangzhou.aliyuncs.com/namespace/repotest:latest", digest: "sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917"},
		{file: "aliyun/aliyun-acr.rancher-cn-doc.json", source: "aliyun",
			image: "registry.cn-shanghai.aliyuncs.com/rancher_cn/webhook:latest", warn: true},
		{file: "aliyun/aliyun-acr.rancher-cn-doc.json", source: "aliyun", query: "net_type=vpc",
			image: "registry-vpc.cn-shanghai.aliyuncs.com/rancher_cn/webhook:latest", warn: true},
		{file: "aliyun/aliyun-acr.rancher-cn-doc.json", source: "aliyun", query: "net_type=internal",
			image: "registry-internal.cn-shanghai.aliyuncs.com/rancher_cn/webhook:latest", warn: true},
		{file: "aliyun/aliyun-acr.official-doc.json", source: "aliyun", registryHost: "acme-registry.cn-hangzhou.cr.aliyuncs.com",
			image: "acme-registry.cn-hangzhou.cr.aliyuncs.com/namespace/repotest:latest", digest: "sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917"},
		{file: "dockerhub/dockerhub.official-doc.json", source: "dockerhub", image: "svendowideit/testhook:latest", pusher: "trustedbuilder"},
		{file: "dockerhub/dockerhub.keel-fixture.json", source: "dockerhub", image: "karolisr/keel:0.1.7", pusher: "karolisr"},
		{file: "dockerhub/dockerhub.rancher-cn-doc.json", source: "dockerhub", image: "hongxiaolu/iperf3:latest", pusher: "hongxiaolu"},
		{file: "harbor/harbor-v1-pushImage.flux-recv-fixture.json", source: "harbor", image: "demo.goharbor.io/test123/alpine:3.10",
			digest: "sha256:e4355b66995c96b4b468159fc5c7e3540fcef961189ca13fee877798649f531a", pusher: "hiddeco"},
		{file: "harbor/harbor-v1-pushImage.keel-fixture.json", source: "harbor", image: "harbor.mydomain.com/library/ai-rag:1.2.3",
			digest: "sha256:b4758aaed11c155a476b9857e1178f157759c99cb04c907a04993f5481eff848", pusher: "user"},
		{file: "harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json", source: "harbor", image: "hub.harbor.com/test-webhook/debian:latest",
			digest: "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8", pusher: "admin"},
		{file: "harbor/harbor-v2-PUSH_ARTIFACT.flux-recv-fixture.json", source: "harbor", image: "hub.harbor.com/test-webhook/debian:latest",
			digest: "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8", pusher: "admin"},
		{file: "harbor/harbor-v2-PUSH_ARTIFACT.keel-fixture.json", source: "harbor", image: "quay.io/mynamespace/repository:1.2.3",
			digest: "sha256:b4758aaed11c155a476b9857e1178f157759c99cb04c907a04993f5481eff848", pusher: "user"},
		{file: "harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json", source: "harbor", registryHost: "harbor.internal:8443",
			image: "harbor.internal:8443/test-webhook/debian:latest", digest: "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8", pusher: "admin"},
		{file: "tcr/tencent-tcr.official-doc.json", source: "tcr", image: "xxx-bj.tencentcloudcr.com/public/nginx:v1.10.0", pusher: "332133xxxx", warn: true},
		{file: "quay/quay.official-doc.json", source: "quay", image: "quay.io/dgangaia/test:latest"},
		{file: "quay/quay.keel-fixture.json", source: "quay", image: "quay.io/mynamespace/repository:1.2.3"},
		{file: "quay/quay.flux-recv-fixture.json", source: "quay", image: "quay.io/hiddeco/foo:3.10"},
		{file: "ghcr/ghcr-package-event.theryangeary-homelab-test.json", source: "ghcr", image: "ghcr.io/theryangeary/www:0e2a89b",
			digest: "sha256:89160c587d0c36bf54090497a465445c14980ba48efbcf3b0d03c49b76f3feb8", pusher: "theryangeary"},
		{file: "ghcr/github-package.keel-fixture.json", source: "ghcr", image: "ghcr.io/utaitebox/utaitebox-server:3.2.1",
			digest: "sha256:7d3848ba2f2e7f69bebb4b576e5fad0379b64a0b1512aee6ad0ec9e7c6319fed", pusher: "DingGGu"},
		{file: "ghcr/github-registry_package.keel-fixture.json", source: "ghcr", image: "ghcr.io/dingggu/utaitebox/server:1.2.3", pusher: "DingGGu"},
		{file: "azure/azure-acr.official-doc.json", source: "azure", image: "myregistry.azurecr.io/hello-world:v1",
			digest: "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d"},
		{file: "azure/azure-acr.keel-fixture.json", source: "azure", image: "myregistry.azurecr.io/hello-world:v1",
			digest: "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d"},
		{file: "distribution/distribution-registry.gitlab-push-with-tag.keel-comment.json", source: "distribution", image: "registry.git.erxes.io/shinebayar-g/a:0.01",
			digest: "sha256:4afff550708506c5b8b7384ad10d401a02b29ed587cb2730cb02753095b5178d", pusher: "shinebayar-g"},
		{file: "gcr/gcp-gcr-pubsub-push-envelope.flux-recv-fixture.json", source: "gcr", image: "us.gcr.io/am/am.kebab.api:test"},
		{file: "gcr/gcp-gcr-pubsub-data-decoded.flux-recv-fixture.json", source: "gcr", image: "us.gcr.io/am/am.kebab.api:test"},
		{file: "gcr/gcp-artifact-registry-message.official-doc.json", source: "gcr", image: "us-west1-docker.pkg.dev/my-project/my-repo/hello-world:1.1", warn: true},
		{file: "jfrog/jfrog-artifactory.keel-fixture.json", source: "jfrog", registryHost: "acme.jfrog.io/docker-remote",
			image: "acme.jfrog.io/docker-remote/library/ubuntu:latest", digest: "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce", pusher: "jfrog/user@example.com"},
		{file: "jfrog/jfrog-artifactory.docker-pushed.official-doc-data.json", source: "jfrog", registryHost: "acme.jfrog.io",
			image: "acme.jfrog.io/library/ubuntu:latest", digest: "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce"},
		{file: "nexus/nexus.flux-recv-fixture.json", source: "nexus", registryHost: "nexus.example.com:8082",
			image: "nexus.example.com:8082/app1/alpine:3.4", pusher: "admin"},
		{file: "gitea/gitea-package.DERIVED-from-gitea-test-fixture.json", source: "gitea", image: "localhost:3000/user1/giteacontainer:latest", pusher: "user1"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"?"+tt.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, err := Parse(tt.source, &Request{Body: readPayload(t, tt.file), Query: q, RegistryHost: tt.registryHost, Header: http.Header{}})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d pushes, want 1", len(got))
			}
			p := got[0]
			if p.Push.Image != tt.image || p.Push.Digest != tt.digest || p.Push.Pusher != tt.pusher || p.Push.Source != tt.source {
				t.Errorf("got %+v, want image %s digest %q pusher %q", p.Push, tt.image, tt.digest, tt.pusher)
			}
			if (len(p.Warnings) > 0) != tt.warn {
				t.Errorf("warnings = %v, want some: %v", p.Warnings, tt.warn)
			}
		})
	}
}

func TestParseCustom(t *testing.T) {
	tmpl := string(readPayload(t, "custom/custom-jenkins.rancher-cn-doc.template.json"))
	fill := strings.NewReplacer("${images_tag}", "v2.0.1", "${images_repo_url}", "https://registry.cn-hangzhou.aliyuncs.com/",
		"${images_name}", "website", "${images_namespace}", "acme")
	got, err := parseCustom(&Request{Body: []byte(fill.Replace(tmpl))})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Push.Image != "registry.cn-hangzhou.aliyuncs.com/acme/website:v2.0.1" {
		t.Errorf("image = %s", got[0].Push.Image)
	}
	// The template as documented, placeholders unfilled, is not an image.
	if _, err := parseCustom(&Request{Body: []byte(tmpl)}); !errors.Is(err, ErrPayload) {
		t.Errorf("unfilled template: err = %v, want a payload error", err)
	}
}

func TestParseIgnoredAndBad(t *testing.T) {
	tests := []struct {
		name, source, body string
		ignored            bool
	}{
		{"dockerhub test delivery", "dockerhub", `{"push_data":{"pusher":"x"},"repository":{"repo_name":"a/b"}}`, true},
		{"harbor pull", "harbor", string(readPayload(t, "harbor/harbor-v2-cloudevents.source-comment.json")), true},
		{"harbor delete", "harbor", `{"type":"DELETE_ARTIFACT","event_data":{"resources":[]}}`, true},
		{"harbor 1.10 doc-only shape", "harbor", string(readPayload(t, "harbor/harbor-v1.10-user-guide-DOC-ONLY-not-real.json")), false},
		{"not json", "aliyun", `{"push_data":`, false},
		{"aliyun without region", "aliyun", `{"push_data":{"tag":"1"},"repository":{"repo_full_name":"a/b"}}`, false},
		{"bad tag", "dockerhub", `{"push_data":{"tag":"bad tag"},"repository":{"repo_name":"a/b"}}`, false},
		{"newline in repo", "dockerhub", `{"push_data":{"tag":"1"},"repository":{"repo_name":"a/b\nc"}}`, false},
		{"upper case repo", "dockerhub", `{"push_data":{"tag":"1"},"repository":{"repo_name":"Acme/B"}}`, false},
		{"custom without tag", "custom", `{"repository":{"name":"x"}}`, false},
		{"array body", "harbor", `[1,2]`, false},
		{"distribution blobs and untagged manifest", "distribution", string(readPayload(t, "distribution/distribution-registry.envelope.official-doc.json")), true},
		{"quay without tags", "quay", `{"repository":"a/b","updated_tags":[]}`, true},
		{"azure delete", "azure", `{"action":"delete","target":{"repository":"a","tag":"1"},"request":{"host":"r.azurecr.io"}}`, true},
		{"gcr delete", "gcr", `{"action":"DELETE","tag":"gcr.io/a/b:1"}`, true},
		{"gcr bad base64", "gcr", `{"message":{"data":"%%%"}}`, false},
		{"jfrog without registryHost", "jfrog", string(readPayload(t, "jfrog/jfrog-artifactory.keel-fixture.json")), false},
		{"nexus maven", "nexus", `{"action":"CREATED","component":{"format":"maven2","name":"a","version":"1"}}`, true},
		{"gitea npm", "gitea", `{"action":"created","package":{"type":"npm","name":"a","version":"1"}}`, true},
		{"ghcr npm", "ghcr", `{"action":"published","package":{"name":"a","namespace":"o","package_type":"npm","package_version":{"version":"1"}}}`, true},
		{"ghcr untagged", "ghcr", `{"action":"published","package":{"name":"a","namespace":"o","package_type":"CONTAINER","package_version":{"version":"sha256:` + strings.Repeat("a", 64) + `"}}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.source, &Request{Body: []byte(tt.body), Query: url.Values{}, Header: http.Header{}})
			var ign *Ignored
			if tt.ignored {
				if !errors.As(err, &ign) || ign.Reason == "" {
					t.Errorf("err = %v, want ignored with a reason", err)
				}
				return
			}
			if !errors.Is(err, ErrPayload) {
				t.Errorf("err = %v, want a payload error", err)
			}
		})
	}
}

// FuzzParsers feeds arbitrary bodies to every parser: none may panic, and every push returned
// carries a valid image.
func FuzzParsers(f *testing.F) {
	for _, name := range []string{"aliyun/aliyun-acr.official-doc.json", "dockerhub/dockerhub.official-doc.json",
		"harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json", "custom/custom-jenkins.rancher-cn-doc.template.json"} {
		f.Add(readPayload(f, name))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, parse := range parsers {
			pushes, err := parse(&Request{Body: body, Query: url.Values{}, RegistryHost: "r.example.com", Header: http.Header{}})
			if err != nil {
				continue
			}
			for _, p := range pushes {
				if p.Push.Image == "" || strings.ContainsAny(p.Push.Image, " \n\t") {
					t.Fatalf("%s: bad image %q", name, p.Push.Image)
				}
			}
		}
	})
}

// TestDetect checks that source: auto recognises every captured sample.
func TestDetect(t *testing.T) {
	tests := map[string]string{
		"aliyun/aliyun-acr.official-doc.json":                                       "aliyun",
		"dockerhub/dockerhub.official-doc.json":                                     "dockerhub",
		"dockerhub/dockerhub.rancher-cn-doc.json":                                   "dockerhub",
		"custom/custom-jenkins.rancher-cn-doc.template.json":                        "custom",
		"harbor/harbor-v1-pushImage.flux-recv-fixture.json":                         "harbor",
		"harbor/harbor-v2-cloudevents.source-comment.json":                          "harbor",
		"quay/quay.official-doc.json":                                               "quay",
		"azure/azure-acr.official-doc.json":                                         "azure",
		"distribution/distribution-registry.gitlab-push-with-tag.keel-comment.json": "distribution",
		"gcr/gcp-gcr-pubsub-push-envelope.flux-recv-fixture.json":                   "gcr",
		"jfrog/jfrog-artifactory.keel-fixture.json":                                 "jfrog",
		"nexus/nexus.flux-recv-fixture.json":                                        "nexus",
		"gitea/gitea-package.DERIVED-from-gitea-test-fixture.json":                  "gitea",
		"ghcr/ghcr-package-event.theryangeary-homelab-test.json":                    "ghcr",
		"ghcr/github-registry_package.keel-fixture.json":                            "ghcr",
	}
	for file, want := range tests {
		if got := Detect(http.Header{}, readPayload(t, file)); got != want {
			t.Errorf("%s: detected %q, want %q", file, got, want)
		}
	}
	if got := Detect(http.Header{"X-Github-Event": {"package"}}, []byte(`{}`)); got != "ghcr" {
		t.Errorf("by header: %q", got)
	}
}

func TestTooDeep(t *testing.T) {
	if tooDeep([]byte(`{"a":[{"b":"[[[[[[[["}]}`)) {
		t.Error("brackets in strings counted")
	}
	if !tooDeep([]byte(strings.Repeat("[", 65))) {
		t.Error("65 levels accepted")
	}
}

// TestSignedPushTimes: formats whose signed body carries the push time give it, so that a replay
// under a new delivery id is recognisable as older than what a target runs.
func TestSignedPushTimes(t *testing.T) {
	got, err := Parse("ghcr", &Request{Body: readPayload(t, "ghcr/ghcr-package-event.theryangeary-homelab-test.json"), Header: http.Header{}, Query: url.Values{}})
	if err != nil || len(got) != 1 || got[0].Push.PushedAt.Format("2006-01-02T15:04:05Z") != "2025-11-03T13:50:26Z" {
		t.Errorf("ghcr push time: %v %v", got, err)
	}
	got, err = Parse("ghcr", &Request{Body: readPayload(t, "ghcr/github-package.keel-fixture.json"), Header: http.Header{}, Query: url.Values{}})
	if err != nil || len(got) != 1 || !got[0].Push.PushedAt.IsZero() {
		t.Errorf("zero time kept: %v %v", got, err)
	}
}
