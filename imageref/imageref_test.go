package imageref

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in                       string
		repo, tag, digest, canon string
	}{
		{"nginx", "nginx", "", "", "index.docker.io/library/nginx"},
		{"nginx:1.25", "nginx", "1.25", "", "index.docker.io/library/nginx"},
		{"library/nginx:1", "library/nginx", "1", "", "index.docker.io/library/nginx"},
		{"docker.io/library/nginx:1", "docker.io/library/nginx", "1", "", "index.docker.io/library/nginx"},
		{"index.docker.io/acme/api:2", "index.docker.io/acme/api", "2", "", "index.docker.io/acme/api"},
		{"localhost:5000/app:v1", "localhost:5000/app", "v1", "", "localhost:5000/app"},
		{"localhost:5000/app", "localhost:5000/app", "", "", "localhost:5000/app"},
		{"registry.cn-hangzhou.aliyuncs.com/ns/app:1.0@sha256:" + strings.Repeat("a", 64),
			"registry.cn-hangzhou.aliyuncs.com/ns/app", "1.0", "sha256:" + strings.Repeat("a", 64), "registry.cn-hangzhou.aliyuncs.com/ns/app"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Repo != tt.repo || r.Tag != tt.tag || r.Digest != tt.digest || r.Canonical() != tt.canon {
				t.Errorf("got %q %q %q %q, want %q %q %q %q", r.Repo, r.Tag, r.Digest, r.Canonical(), tt.repo, tt.tag, tt.digest, tt.canon)
			}
			if r.String() != tt.in {
				t.Errorf("String() = %q, want %q", r.String(), tt.in)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, in := range []string{"", "nginx :1", "nginx:1\n", "Nginx:1", "ngi nx", "a:" + strings.Repeat("x", 200),
		strings.Repeat("a/", 300) + "b", "nginx@sha256:zz", "nginx:ta\tg", "héllo", "nginx:-bad", "nginx:", "nginx@", "@sha256:" + strings.Repeat("a", 64)} {
		t.Run(in, func(t *testing.T) {
			if _, err := Parse(in); !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) err = %v, want ErrInvalid", in, err)
			}
		})
	}
}

func TestSameRepository(t *testing.T) {
	a, _ := Parse("nginx:1")
	b, _ := Parse("docker.io/library/nginx:2")
	c, _ := Parse("quay.io/nginx:2")
	if !a.SameRepository(b) || a.SameRepository(c) {
		t.Errorf("SameRepository wrong")
	}
	if got := b.WithRepo(a).String(); got != "nginx:2" {
		t.Errorf("WithRepo = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"nginx", "a/b:c", "h:5000/x@sha256:" + strings.Repeat("0", 64), "x:y:z", "@", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(r.String())
		if err != nil || again.String() != r.String() || again.Canonical() != r.Canonical() {
			t.Fatalf("round trip of %q: %v %q", s, err, again.String())
		}
	})
}
