// Command image builds imagehook's container image without a daemon and without pulling anything:
// the static binaries of `make image` on an empty base, as an OCI image index for linux/amd64 and
// linux/arm64, written as an OCI layout (for pushing) and as one tarball per architecture (for
// `podman load` / `docker load`). With -push it pushes the layout's index to a registry. It is the
// way ko builds images, with go-containerregistry.
//
//	go run ./hack/image -version v1.2.3 -revision abc123 -out bin/image amd64=bin/linux-amd64/imagehook arm64=bin/linux-arm64/imagehook
//	go run ./hack/image -push registry.example.com/imagehook:v1.2.3 -out bin/image
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: numeric, non-root, the same as the Dockerfile's.
const (
	uid     = 65532
	binPath = "usr/local/bin/imagehook"
	source  = "https://github.com/imagehook/imagehook"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	version := fs.String("version", "dev", "image version label")
	revision := fs.String("revision", "", "source revision label")
	out := fs.String("out", "bin/image", "OCI layout directory; tarballs are written beside it")
	rootfs := fs.String("rootfs", "hack/image/rootfs", "files copied into the image (passwd, group, /data)")
	created := fs.Int64("created", 0, "creation time, Unix seconds (default: SOURCE_DATE_EPOCH, else the epoch) for reproducible images")
	push := fs.String("push", "", "push the layout's index to this reference instead of building")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *push != "" {
		return pushIndex(*out, *push)
	}
	if fs.NArg() == 0 {
		return errors.New("want ARCH=BINARY arguments, such as amd64=bin/linux-amd64/imagehook")
	}
	when := time.Unix(*created, 0).UTC()
	if *created == 0 {
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			var sec int64
			if _, err := fmt.Sscan(s, &sec); err == nil {
				when = time.Unix(sec, 0).UTC()
			}
		}
	}
	base, err := baseLayer(*rootfs)
	if err != nil {
		return err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	if err := os.RemoveAll(*out); err != nil {
		return err
	}
	lp, err := layout.Write(*out, empty.Index)
	if err != nil {
		return err
	}
	for _, arg := range fs.Args() {
		arch, bin, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("%q: want ARCH=BINARY", arg)
		}
		img, err := build(base, arch, bin, *version, *revision, when)
		if err != nil {
			return fmt.Errorf("%s: %w", arch, err)
		}
		platform := &v1.Platform{OS: "linux", Architecture: arch}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platform}})
		tag, err := name.NewTag("imagehook:" + *version)
		if err != nil {
			tag, _ = name.NewTag("imagehook:dev")
		}
		file := fmt.Sprintf("%s-linux-%s.tar", strings.TrimSuffix(*out, "/"), arch)
		if err := tarball.WriteToFile(file, tag, img); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		size, _ := imageSize(img)
		fmt.Printf("linux/%s: %s (%.1f MB compressed)\n", arch, file, float64(size)/(1<<20))
	}
	if err := lp.AppendIndex(idx); err != nil {
		return err
	}
	d, _ := idx.Digest()
	fmt.Printf("OCI layout %s: index %s\n", *out, d)
	return nil
}

// build assembles one architecture's image: the shared base layer, the binary, and the config.
func build(base v1.Layer, arch, bin, version, revision string, created time.Time) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	binLayer, err := layerOf([]entry{{name: binPath, mode: 0o755, data: data}}, created)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base, binLayer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", arch, v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir: "/data",
		Entrypoint: []string{"/" + binPath},
		// The quickstart when no config is mounted; it listens on loopback unless --listen says
		// otherwise, also inside a container.
		Cmd:          []string{"serve", "--data-dir", "/data"},
		Env:          []string{"PATH=/usr/local/bin"},
		Volumes:      map[string]struct{}{"/data": {}},
		ExposedPorts: map[string]struct{}{"9000/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.source":   source,
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.revision": revision,
			"org.opencontainers.image.title":    "imagehook",
			"org.opencontainers.image.licenses": "Apache-2.0",
		},
	}
	return mutate.ConfigFile(img, cf)
}

type entry struct {
	name string
	mode int64
	dir  bool
	data []byte
}

// baseLayer holds the rootfs directory: /etc/passwd and /etc/group naming the user, and /data
// owned by it (a volume mounted there starts with that ownership).
func baseLayer(rootfs string) (v1.Layer, error) {
	var entries []entry
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == rootfs {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		if d.IsDir() {
			entries = append(entries, entry{name: filepath.ToSlash(rel), mode: 0o755, dir: true})
			return nil
		}
		data, err := os.ReadFile(p)
		entries = append(entries, entry{name: filepath.ToSlash(rel), mode: 0o644, data: data})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	entries = append(entries, entry{name: "tmp", mode: 0o1777, dir: true})
	return layerOf(entries, time.Unix(0, 0))
}

// layerOf writes entries into a layer; everything under data/ belongs to the image's user.
func layerOf(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX}
		if e.dir {
			h.Name, h.Typeflag, h.Size = e.name+"/", tar.TypeDir, 0
		}
		if e.name == "data" || strings.HasPrefix(e.name, "data/") {
			h.Uid, h.Gid = uid, uid
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

func imageSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

// pushIndex pushes the index of the OCI layout at dir to ref, with the credentials of the local
// keychain (docker/podman login).
func pushIndex(dir, ref string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	outer, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := outer.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		return fmt.Errorf("%s: want one image index in the layout", dir)
	}
	idx, err := outer.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	fmt.Println("pushed", ref)
	return nil
}
