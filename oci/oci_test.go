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
	if h := c.host("registry-vpc.cn-hangzhou.aliyuncs.com"); h.Username != "u" || h.Host != "registry-vpc.cn-hangzhou.aliyuncs.com" {
		t.Errorf("alias: %+v", h)
	}
	if h := c.host("docker.io"); h.Username != "" {
		t.Errorf("unrelated host got credentials: %+v", h)
	}
	if h := New([]Host{{Host: "a.example.com", Username: "u"}}, nil, slog.New(slog.DiscardHandler)).host("b.example.com"); h.Username != "" {
		t.Errorf("without aliases another host got credentials: %+v", h)
	}
}
