package reconcile

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/manifests"
)

// treeRepo is a repository whose tip is a tree in memory.
type treeRepo struct{ fsys fs.FS }

func (r treeRepo) Read(_ context.Context, fn func(fs.FS) error) error { return fn(r.fsys) }

const sha = "sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917"

// TestCurrentMarked: a marker target's repository and tag are read by manifests' one rule
// (manifests.CurrentMarked): the first whole reference wins, a Fleet :digest marker holding
// repository:tag@digest is a whole reference, a bare digest names no repository, else the first
// name and tag fields; reconcile.image names the repository when it is set.
func TestCurrentMarked(t *testing.T) {
	const web = "registry.example.com/acme/web"
	file := func(lines ...string) fstest.MapFS {
		return fstest.MapFS{"m/values.yaml": {Data: []byte(strings.Join(lines, "\n") + "\n")}}
	}
	for _, tt := range []struct {
		name      string
		tree      fstest.MapFS
		image     string // reconcile.image
		wantImage string
		wantTag   string
		wantErr   string
	}{
		{name: "tag only, reconcile.image", image: web, wantImage: web, wantTag: "1.2.0",
			tree: file(`tag: "1.2.0" # {"$imagepolicy": "apps:web:tag"}`)},
		{name: "tag only, no reconcile.image", wantErr: "set reconcile.image",
			tree: file(`tag: "1.2.0" # {"$imagepolicy": "apps:web:tag"}`)},
		{name: "name and tag", wantImage: web, wantTag: "1.2.0",
			tree: file(`repository: `+web+` # {"$imagepolicy": "apps:web:name"}`, `tag: "1.2.0" # {"$imagepolicy": "apps:web:tag"}`)},
		{name: "whole reference", wantImage: web, wantTag: "1.2.0",
			tree: file(`image: ` + web + `:1.2.0 # {"$imagepolicy": "apps:web"}`)},
		{name: "Fleet digest holds the whole reference", wantImage: web, wantTag: "1.2.0",
			tree: file(`image: ` + web + `:1.2.0@` + sha + ` # {"$imagescan": "apps:web:digest"}`)},
		{name: "bare digest before the name", wantImage: web, wantTag: "1.2.0",
			tree: file(`digest: `+sha+` # {"$imagepolicy": "apps:web:digest"}`, `repository: `+web+` # {"$imagepolicy": "apps:web:name"}`, `tag: "1.2.0" # {"$imagepolicy": "apps:web:tag"}`)},
		{name: "bare digest in a Fleet digest marker", wantImage: web, wantTag: "1.2.0",
			tree: file(`digest: `+sha+` # {"$imagescan": "apps:web:digest"}`, `repository: `+web+` # {"$imagescan": "apps:web:name"}`, `tag: "1.2.0" # {"$imagescan": "apps:web:tag"}`)},
		{name: "disagree: a tag field before a whole reference", wantImage: web, wantTag: "2.0.0",
			tree: file(`tag: "1.0.0" # {"$imagepolicy": "apps:web:tag"}`, `image: `+web+`:2.0.0 # {"$imagepolicy": "apps:web"}`)},
		{name: "disagree: a name field before a whole reference", wantImage: web, wantTag: "2.0.0",
			tree: file(`repository: registry.example.com/acme/old # {"$imagepolicy": "apps:web:name"}`, `image: `+web+`:2.0.0 # {"$imagepolicy": "apps:web"}`)},
		{name: "disagree: two tags, the first counts", wantImage: web, wantTag: "1.0.0",
			tree: file(`repository: `+web+` # {"$imagepolicy": "apps:web:name"}`, `tag: "1.0.0" # {"$imagepolicy": "apps:web:tag"}`, `again: "2.0.0" # {"$imagepolicy": "apps:web:tag"}`)},
		{name: "reconcile.image over the marked name", image: web, wantImage: web, wantTag: "3.0.0",
			tree: file(`image: registry.example.com/acme/old:3.0.0 # {"$imagepolicy": "apps:web"}`)},
		{name: "nothing marked", wantErr: "not found",
			tree: file(`image: ` + web + `:1.0.0 # {"$imagepolicy": "apps:other"}`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := config.Target{Repo: "apps", Path: "m", Marker: "apps:web"}
			image, tag, err := currentMarked(context.Background(), treeRepo{tt.tree}, target, tt.image)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %q, %v; want an error saying %q", image, tag, err, tt.wantErr)
				}
				return
			}
			if err != nil || image != tt.wantImage || tag != tt.wantTag {
				t.Errorf("got %q, %q, %v; want %q, %q", image, tag, err, tt.wantImage, tt.wantTag)
			}
		})
	}
	if _, _, err := currentMarked(context.Background(), treeRepo{file("a: b")}, config.Target{Path: "m", Marker: "apps:web"}, ""); !errors.Is(err, manifests.ErrNotFound) {
		t.Errorf("no marker: %v, want ErrNotFound", err)
	}
}
