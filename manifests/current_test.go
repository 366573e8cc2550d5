package manifests

import (
	"errors"
	"testing"
	"testing/fstest"
)

// TestCurrentImage reads what each kind of place holds now, as one reference.
func TestCurrentImage(t *testing.T) {
	fsys := fstest.MapFS{
		"app/deploy.yaml":   {Data: []byte("kind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: web, image: \"acme/web:1.0\"}\n")},
		"chart/values.yaml": {Data: []byte("image:\n  registry: registry.example.com\n  repository: acme/web\n  tag: \"2.0\"\n  digest: \"\"\nwhole: registry.example.com/acme/web:3.0@sha256:" + digest64 + "\n")},
		"fleet/values.yaml": {Data: []byte("image:\n  repository: acme/web # {\"$imagepolicy\": \"apps:web:name\"}\n  tag: \"4.0\" # {\"$imagepolicy\": \"apps:web:tag\"}\nother: acme/other:9 # {\"$imagepolicy\": \"apps:other\"}\n")},
		// Fleet's imagescan writes repository:tag@digest where its :digest marker stands.
		"scan/values.yaml": {Data: []byte("image: acme/web:5.0@sha256:" + digest64 + " # {\"$imagescan\": \"apps:web:digest\"}\n")},
		// Flux's :digest holds the digest alone; so may a whole-reference marker, which then names no image.
		"flux/values.yaml": {Data: []byte("pin: sha256:" + digest64 + " # {\"$imagehook\": \"apps:web\"}\ndigest: sha256:" + digest64 + " # {\"$imagepolicy\": \"apps:web:digest\"}\nrepository: acme/web # {\"$imagepolicy\": \"apps:web:name\"}\ntag: \"6.0\" # {\"$imagepolicy\": \"apps:web:tag\"}\n")},
	}
	web, _ := WorkloadTarget("deployment/web", "", "web")
	for _, tt := range []struct {
		name  string
		place Place
		want  string
	}{
		{"workload", Place{Path: "app", Workload: web}, "acme/web:1.0"},
		{"values in parts", Place{Path: "chart", Values: &Values{File: "values.yaml", Registry: "image.registry", Repository: "image.repository", Tag: "image.tag", Digest: "image.digest"}}, "registry.example.com/acme/web:2.0"},
		{"values whole", Place{Path: "chart", Values: &Values{File: "values.yaml", Image: "whole"}}, "registry.example.com/acme/web:3.0@sha256:" + digest64},
		{"marker fields", Place{Path: "fleet", Marker: "apps:web"}, "acme/web:4.0"},
		{"marker whole", Place{Path: "fleet", Marker: "apps:other"}, "acme/other:9"},
		{"marker Fleet digest, whole", Place{Path: "scan", Marker: "apps:web"}, "acme/web:5.0@sha256:" + digest64},
		{"marker bare digests", Place{Path: "flux", Marker: "apps:web"}, "acme/web:6.0@sha256:" + digest64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CurrentImage(fsys, tt.place, Options{})
			if err != nil || got != tt.want {
				t.Errorf("CurrentImage = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := CurrentImage(fsys, Place{Path: "fleet", Marker: "apps:none"}, Options{}); err == nil {
		t.Error("an unknown marker: no error")
	}
	// A place that marks only a tag names no image: CurrentImage refuses it, CurrentMarked has the tag.
	tagOnly := fstest.MapFS{"t/values.yaml": {Data: []byte("tag: \"7.0\" # {\"$imagepolicy\": \"apps:web:tag\"}\n")}}
	if got, err := CurrentImage(tagOnly, Place{Path: "t", Marker: "apps:web"}, Options{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag only: CurrentImage = %q, %v; want ErrNotFound", got, err)
	}
	if got, err := CurrentMarked(tagOnly, Place{Path: "t", Marker: "apps:web"}, Options{}); err != nil || got != (MarkedImage{Tag: "7.0"}) {
		t.Errorf("tag only: CurrentMarked = %+v, %v; want the tag alone", got, err)
	}
}

const digest64 = "457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917"
