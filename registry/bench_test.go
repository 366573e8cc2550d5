package registry

import (
	"net/http"
	"net/url"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	for _, tt := range []struct{ source, file string }{
		{"aliyun", "aliyun/aliyun-acr.official-doc.json"},
		{"dockerhub", "dockerhub/dockerhub.official-doc.json"},
		{"harbor", "harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json"},
		{"ghcr", "ghcr/ghcr-package-event.theryangeary-homelab-test.json"},
		{"distribution", "distribution/distribution-registry.envelope.official-doc.json"},
	} {
		body := readPayload(b, tt.file)
		req := &Request{Body: body, Header: http.Header{}, Query: url.Values{}}
		b.Run(tt.source, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_, _ = Parse(tt.source, req)
			}
		})
	}
}

func BenchmarkDetect(b *testing.B) {
	body := readPayload(b, "harbor/harbor-v2-PUSH_ARTIFACT.official-doc.json")
	b.ReportAllocs()
	for b.Loop() {
		if Detect(http.Header{}, body) != "harbor" {
			b.Fatal("detect")
		}
	}
}
