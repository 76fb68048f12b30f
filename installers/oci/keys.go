package oci

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// publicKey is one trusted cosign public key.
type publicKey struct {
	id       string // "sha256:<hex>" of the key's PKIX DER encoding
	label    string // where it came from, for messages
	verifier signature.Verifier
}

// parseKeys turns the PEM inputs into verifiers. Each input may hold several
// PUBLIC KEY blocks (a file or Secret value listing rotated keys). labels
// name the inputs in errors; missing labels fall back to "key N".
func parseKeys(keysPEM [][]byte, labels []string) ([]publicKey, error) {
	if len(keysPEM) == 0 {
		return nil, errors.New("no cosign public keys configured: give at least one PEM public key (cosign.pub)")
	}
	var keys []publicKey
	seen := map[string]string{}
	for i, in := range keysPEM {
		label := fmt.Sprintf("key %d", i+1)
		if i < len(labels) && labels[i] != "" {
			label = labels[i]
		}
		blocks, err := splitPEM(in)
		if err != nil {
			return nil, fmt.Errorf("cosign public %s: %w", label, err)
		}
		for j, block := range blocks {
			where := label
			if len(blocks) > 1 {
				where = fmt.Sprintf("%s (PEM block %d)", label, j+1)
			}
			k, err := parseKey(block)
			if err != nil {
				return nil, fmt.Errorf("cosign public %s: %w", where, err)
			}
			if first, dup := seen[k.id]; dup {
				return nil, fmt.Errorf("cosign public %s: same key as %s (%s); remove the duplicate", where, first, k.id)
			}
			seen[k.id] = where
			k.label = where
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// splitPEM returns each PEM block of in, re-encoded, and refuses anything
// that is not PEM (a private key pasted by mistake is refused by parseKey).
func splitPEM(in []byte) ([][]byte, error) {
	rest := bytes.TrimSpace(in)
	if len(rest) == 0 {
		return nil, errors.New("empty; expected a PEM block starting with -----BEGIN PUBLIC KEY-----")
	}
	var out [][]byte
	for len(rest) > 0 {
		block, r := pem.Decode(rest)
		if block == nil {
			if len(out) == 0 {
				return nil, errors.New("not PEM; expected a block starting with -----BEGIN PUBLIC KEY-----")
			}
			return nil, fmt.Errorf("unexpected text after PEM block %d", len(out))
		}
		out = append(out, pem.EncodeToMemory(block))
		rest = bytes.TrimSpace(r)
	}
	return out, nil
}

func parseKey(block []byte) (publicKey, error) {
	if p, _ := pem.Decode(block); p != nil && p.Type != string(cryptoutils.PublicKeyPEMType) && p.Type != string(cryptoutils.PKCS1PublicKeyPEMType) {
		return publicKey{}, fmt.Errorf("PEM block is %q, not a PUBLIC KEY; give the public half (cosign.pub), never the private key", p.Type)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(block)
	if err != nil {
		return publicKey{}, fmt.Errorf("parse: %w", err)
	}
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return publicKey{}, fmt.Errorf("unusable key: %w", err)
	}
	// SHA-256 is what cosign signs image payloads with for ECDSA and RSA;
	// Ed25519 is verified as pure Ed25519, like `cosign verify --key`.
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return publicKey{}, fmt.Errorf("load verifier: %w", err)
	}
	id, err := keyID(pub)
	if err != nil {
		return publicKey{}, err
	}
	return publicKey{id: id, verifier: v}, nil
}

// keyID is the SHA-256 fingerprint of the key's PKIX DER encoding, the same
// as `openssl pkey -pubin -outform DER | sha256sum`.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("encode key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
