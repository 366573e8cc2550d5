package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Signer signs commits, so that branch protection requiring signed commits accepts imagehook's
// and forges show them as verified: with an OpenPGP key, or with an SSH key in the sshsig format
// git writes with gpg.format=ssh.
type Signer struct {
	detach func(message io.Reader) (string, error)
}

// NewSigner reads a signing key: an armored OpenPGP private key, or an OpenSSH private key (the
// format is told by the file's armor), decrypted with passphrase when it is protected.
func NewSigner(key []byte, passphrase string) (*Signer, error) {
	if bytes.Contains(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) || bytes.Contains(key, []byte("PRIVATE KEY-----")) && !bytes.Contains(key, []byte("PGP")) {
		return newSSHSigner(key, passphrase)
	}
	return newPGPSigner(key, passphrase)
}

func newPGPSigner(armored []byte, passphrase string) (*Signer, error) {
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
	return &Signer{detach: func(m io.Reader) (string, error) {
		var sig bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&sig, e, m, nil); err != nil {
			return "", err
		}
		return sig.String(), nil
	}}, nil
}

// gitNamespace is the sshsig namespace git signs commits in (and verify-commit checks).
const gitNamespace = "git"

func newSSHSigner(pemBytes []byte, passphrase string) (*Signer, error) {
	var s ssh.Signer
	var err error
	if passphrase != "" {
		s, err = ssh.ParsePrivateKeyWithPassphrase(pemBytes, []byte(passphrase))
	} else {
		s, err = ssh.ParsePrivateKey(pemBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key (ssh): %w", err)
	}
	return &Signer{detach: func(m io.Reader) (string, error) {
		sig, err := sshsig.Sign(m, s, sshsig.HashSHA512, gitNamespace)
		if err != nil {
			return "", err
		}
		return string(sshsig.Armor(sig)), nil
	}}, nil
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
	sig, err := s.detach(r)
	if err != nil {
		return fmt.Errorf("sign commit: %w", err)
	}
	c.PGPSignature = sig
	return nil
}
