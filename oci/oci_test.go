package oci

import (
	"log/slog"
	"testing"
)

// TestHostThroughAliases: credentials given for one host of an alias group serve the others, and
// no other host.
func TestHostThroughAliases(t *testing.T) {
	c := New([]Host{{Host: "registry.cn-hangzhou.aliyuncs.com", Username: "u", Password: "p"}},
		[][]string{{"registry.cn-hangzhou.aliyuncs.com", "registry-vpc.cn-hangzhou.aliyuncs.com"}}, slog.New(slog.DiscardHandler))
	if h, ok := c.host("registry-vpc.cn-hangzhou.aliyuncs.com"); !ok || h.Username != "u" || h.Host != "registry-vpc.cn-hangzhou.aliyuncs.com" {
		t.Errorf("alias: %+v %v", h, ok)
	}
	if h, ok := c.host("docker.io"); ok || h.Username != "" {
		t.Errorf("unrelated host got credentials: %+v %v", h, ok)
	}
	if h, ok := New([]Host{{Host: "a.example.com", Username: "u"}}, nil, slog.New(slog.DiscardHandler)).host("b.example.com"); ok || h.Username != "" {
		t.Errorf("without aliases another host got credentials: %+v %v", h, ok)
	}
	if _, ok := New([]Host{{Host: "docker.io"}}, nil, slog.New(slog.DiscardHandler)).host("index.docker.io"); !ok {
		t.Error("docker.io configured, index.docker.io (its name in go-containerregistry) refused")
	}
}
