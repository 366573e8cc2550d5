package listener

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/config"
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
		hook                config.Hook
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
		{file: "aliyun/aliyun-acr.official-doc.json", source: "aliyun", hook: config.Hook{RegistryHost: "acme-registry.cn-hangzhou.cr.aliyuncs.com"},
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
		{file: "harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json", source: "harbor", hook: config.Hook{RegistryHost: "harbor.internal:8443"},
			image: "harbor.internal:8443/test-webhook/debian:latest", digest: "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8", pusher: "admin"},
		{file: "tcr/tencent-tcr.official-doc.json", source: "tcr", image: "xxx-bj.tencentcloudcr.com/public/nginx:v1.10.0", pusher: "332133xxxx", warn: true},
	}
	for _, tt := range tests {
		t.Run(tt.file+"?"+tt.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, err := parsers[tt.source](&Request{Body: readPayload(t, tt.file), Query: q, Hook: &tt.hook})
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
	if _, err := parseCustom(&Request{Body: []byte(tmpl)}); !errors.Is(err, errPayload) {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsers[tt.source](&Request{Body: []byte(tt.body), Query: url.Values{}})
			var ign *Ignored
			if tt.ignored {
				if !errors.As(err, &ign) || ign.Reason == "" {
					t.Errorf("err = %v, want ignored with a reason", err)
				}
				return
			}
			if !errors.Is(err, errPayload) {
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
			pushes, err := parse(&Request{Body: body, Query: url.Values{}, Hook: &config.Hook{}})
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
