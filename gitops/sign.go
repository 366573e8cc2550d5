package gitops

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Signer signs commits with an OpenPGP key, so that branch protection requiring signed commits
// accepts imagehook's.
type Signer struct{ entity *openpgp.Entity }

// NewSigner reads an armored OpenPGP private key, decrypting it with passphrase when it is
// protected.
func NewSigner(armored []byte, passphrase string) (*Signer, error) {
	keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if len(keys) == 0 || keys[0].PrivateKey == nil {
		return nil, errors.New("signing key: no private key found")
	}
	e := keys[0]
	if e.PrivateKey.Encrypted {
		if err := e.PrivateKey.Decrypt([]byte(passphrase)); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		for _, sub := range e.Subkeys {
			if sub.PrivateKey != nil && sub.PrivateKey.Encrypted {
				if err := sub.PrivateKey.Decrypt([]byte(passphrase)); err != nil {
					return nil, fmt.Errorf("signing key: %w", err)
				}
			}
		}
	}
	return &Signer{entity: e}, nil
}

// sign sets the commit's signature over its encoding without one.
func (s *Signer) sign(c *object.Commit) error {
	enc := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(enc); err != nil {
		return err
	}
	r, err := enc.Reader()
	if err != nil {
		return err
	}
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, s.entity, r, nil); err != nil {
		return fmt.Errorf("sign commit: %w", err)
	}
	c.PGPSignature = sig.String()
	return nil
}
