package oci

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// ErrUnsigned means the image carries no signature that the configured key verifies for its digest
// and repository.
var ErrUnsigned = errors.New("signature not verified")

// Cosign's layout: a signature of image@sha256:X lives in the same repository under the tag
// sha256-X.sig, one layer per signature, whose blob is the simple-signing payload and whose
// annotation holds the base64 signature of that blob.
const (
	cosignPayloadType   = "application/vnd.dev.cosign.simplesigning.v1+json"
	cosignSignatureNote = "dev.cosignproject.cosign/signature"
	// A signature manifest is small; a hostile one cannot make imagehook read without end.
	maxSignatureLayers = 64
	maxPayloadBytes    = 256 << 10
)

// CosignKey verifies cosign signatures made with one key pair (`cosign sign --key`).
type CosignKey struct {
	verifier signature.Verifier
}

// ParseCosignKey reads a PEM public key as `cosign generate-key-pair` writes it (ECDSA P-256;
// RSA and Ed25519 keys work too).
func ParseCosignKey(pemBytes []byte) (*CosignKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("cosign public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("cosign public key: %w", err)
	}
	return &CosignKey{verifier: v}, nil
}

// VerifySignature checks that image (its repository) at digest carries a cosign signature made with
// key for that very digest and repository. A signature copied from another image or another digest,
// one made with another key, or none at all is ErrUnsigned with the reason. Only the key signature
// is checked: no transparency log is consulted (imagehook may run where Rekor is unreachable).
func (c *Client) VerifySignature(ctx context.Context, image, digest string, key *CosignKey) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, repo, opts, release, err := c.request(ctx, repositoryOf(image), false, nil)
	if err != nil {
		return fmt.Errorf("signature %w", err)
	}
	defer release()
	h, err := v1.NewHash(digest)
	if err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrUnsigned, digest, err)
	}
	tag := repo.Tag(h.Algorithm + "-" + h.Hex + ".sig")
	img, err := remote.Image(tag, opts...)
	if err != nil {
		if err := classify(err, tag.String(), repo.RegistryStr()); errors.Is(err, ErrNoTag) {
			return fmt.Errorf("%w: no signature for %s (no tag %s)", ErrUnsigned, digest, tag.TagStr())
		} else {
			return err
		}
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("signature manifest %s: %w", tag, err)
	}
	why := "no signature layer"
	for i, l := range m.Layers {
		if i == maxSignatureLayers {
			break
		}
		sig, ok := l.Annotations[cosignSignatureNote]
		if l.MediaType != cosignPayloadType || !ok {
			continue
		}
		if l.Size > maxPayloadBytes {
			why = fmt.Sprintf("signature payload of %d bytes", l.Size)
			continue
		}
		if why = checkSignature(img, l, sig, repo, digest, key); why == "" {
			return nil
		}
	}
	return fmt.Errorf("%w for %s@%s: %s", ErrUnsigned, repo.Name(), digest, why)
}

// checkSignature says why one signature layer does not vouch for repo@digest, or "".
func checkSignature(img v1.Image, l v1.Descriptor, sig string, repo name.Repository, digest string, key *CosignKey) string {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return "signature is not base64"
	}
	layer, err := img.LayerByDigest(l.Digest)
	if err != nil {
		return "payload: " + err.Error()
	}
	rc, err := layer.Compressed() // go-containerregistry checks the blob against its digest
	if err != nil {
		return "payload: " + err.Error()
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxPayloadBytes+1))
	if err != nil || len(body) > maxPayloadBytes {
		return fmt.Sprintf("payload unreadable: %v", err)
	}
	if err := key.verifier.VerifySignature(bytes.NewReader(raw), bytes.NewReader(body)); err != nil {
		return "not signed with the configured key"
	}
	// Only now is the payload trusted enough to read.
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(body, &p); err != nil {
		return "payload is not simple signing JSON"
	}
	if p.Critical.Type != payload.CosignSignatureType {
		return fmt.Sprintf("payload type %q", p.Critical.Type)
	}
	if p.Critical.Image.DockerManifestDigest != digest {
		return "signed for another digest, " + p.Critical.Image.DockerManifestDigest
	}
	// cosign writes the repository, newer releases may write repository:tag; either must be this
	// repository, or a signature of one image could vouch for the same bytes pushed elsewhere.
	ref, err := name.ParseReference(p.Critical.Identity.DockerReference)
	if err != nil || ref.Context().Name() != repo.Name() {
		return fmt.Sprintf("signed for another repository, %q", p.Critical.Identity.DockerReference)
	}
	return ""
}

// repositoryOf drops a tag or digest from an image reference.
func repositoryOf(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// Gate checks signatures with each hook's key: the updater asks it by hook.
type Gate struct {
	Client *Client
	// Keys holds the key of each hook that requires signatures.
	Keys map[string]*CosignKey
}

// Check verifies image@digest with hook's key; a hook without a key cannot pass.
func (g Gate) Check(ctx context.Context, hook, image, digest string) error {
	key := g.Keys[hook]
	if key == nil {
		return fmt.Errorf("%w: hook %s has no cosign key", ErrUnsigned, hook)
	}
	return g.Client.VerifySignature(ctx, image, digest, key)
}
