package registrytest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// CosignKey is a key pair as `cosign generate-key-pair` makes it (ECDSA P-256).
type CosignKey struct {
	signer signature.Signer
	// PublicPEM is cosign.pub.
	PublicPEM []byte
}

// NewCosignKey makes a key pair.
func NewCosignKey(t testing.TB) *CosignKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &CosignKey{signer: s, PublicPEM: pub}
}

// Sign stores, under the tag sha256-<hex>.sig of repo, a signature of the simple-signing payload
// naming signedRepo@signedDigest, the way `cosign sign --key` lays it out: an OCI manifest with one
// layer per signature, the payload as the layer's blob and its base64 signature in the
// dev.cosignproject.cosign/signature annotation. Tests forge signatures by passing another repo,
// digest or key than the image's own.
func (r *Registry) Sign(t testing.TB, key *CosignKey, repo, digest, signedRepo, signedDigest string) {
	t.Helper()
	d, err := name.NewDigest(r.Host+"/"+signedRepo+"@"+signedDigest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	body, err := payload.Cosign{Image: d}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := key.signer.SignMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer(body, "application/vnd.dev.cosign.simplesigning.v1+json")
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, Annotations: map[string]string{
		"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig),
	}})
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(r.Host+"/"+repo+":"+strings.Replace(digest, ":", "-", 1)+".sig", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: User, Password: Password})); err != nil {
		t.Fatal(err)
	}
}
