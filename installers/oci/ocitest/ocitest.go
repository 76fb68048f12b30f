// Package ocitest runs an in-process OCI registry on 127.0.0.1 and pushes and
// signs images in it with the cosign library, the way `cosign sign --key`
// does, so tests of installers/oci and of the kube updater use real
// registries and real signatures. Test-only: never import it from a binary.
package ocitest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Registry is a running in-process registry.
type Registry struct {
	// Host is "127.0.0.1:<port>"; go-containerregistry speaks plain HTTP to
	// it (loopback), so verifiers need oci.Options.AllowLoopbackHTTP.
	Host string
	// Server is the underlying test server (for its Listener or Close).
	Server *httptest.Server
}

type registryConfig struct {
	referrers bool
}

// RegistryOption configures StartRegistry.
type RegistryOption func(*registryConfig)

// WithReferrersAPI turns on the OCI 1.1 referrers endpoint. Without it the
// registry is an OCI 1.0 one and clients use the "sha256-<hex>" fallback tag
// for referrers, which is how many production registries still behave.
func WithReferrersAPI() RegistryOption {
	return func(c *registryConfig) { c.referrers = true }
}

// StartRegistry starts a registry that is closed when tb ends. Its request
// log is dropped (it is one line per request).
func StartRegistry(tb testing.TB, opts ...RegistryOption) *Registry {
	tb.Helper()
	var c registryConfig
	for _, o := range opts {
		o(&c)
	}
	srv := httptest.NewServer(registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithReferrersSupport(c.referrers),
	))
	tb.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), Server: srv}
}

// Ref returns "<host>/<repoTag>", e.g. r.Ref("agent:1.2.3").
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// remoteOptions are anonymous: the host's docker config is never read.
func remoteOptions() []remote.Option {
	return []remote.Option{remote.WithAuth(authn.Anonymous)}
}

// PushImage pushes a random single-platform image under ref (repo:tag) and
// returns its digest. Pushing to an existing tag moves the tag.
func PushImage(tb testing.TB, ref string) name.Digest {
	tb.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		tb.Fatalf("ocitest: random image: %v", err)
	}
	if err := remote.Write(tag, img, remoteOptions()...); err != nil {
		tb.Fatalf("ocitest: push %s: %v", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		tb.Fatalf("ocitest: digest: %v", err)
	}
	return tag.Context().Digest(h.String())
}

// PushIndex pushes a random multi-platform image index (two images) under
// ref and returns the index digest.
func PushIndex(tb testing.TB, ref string) name.Digest {
	tb.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		tb.Fatalf("ocitest: random index: %v", err)
	}
	if err := remote.WriteIndex(tag, idx, remoteOptions()...); err != nil {
		tb.Fatalf("ocitest: push %s: %v", ref, err)
	}
	h, err := idx.Digest()
	if err != nil {
		tb.Fatalf("ocitest: digest: %v", err)
	}
	return tag.Context().Digest(h.String())
}

// KeyPair is a cosign key pair as `cosign generate-key-pair` writes it.
type KeyPair struct {
	PrivatePEM []byte // encrypted with Password
	PublicPEM  []byte // what a verifier is configured with (cosign.pub)
	Password   []byte
	signer     signature.SignerVerifier
}

// NewKeyPair generates an ECDSA P-256 cosign key pair, or fails tb.
// Each pair costs about half a second (cosign encrypts the private key with
// scrypt); share pairs between tests where you can (see GenerateKeyPair).
func NewKeyPair(tb testing.TB) *KeyPair {
	tb.Helper()
	k, err := GenerateKeyPair()
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	return k
}

// GenerateKeyPair is NewKeyPair for callers without a testing.TB, such as a
// sync.OnceValue shared by a package's tests.
func GenerateKeyPair() (*KeyPair, error) {
	password := []byte("upkeep-test")
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	sv, err := cosign.LoadPrivateKey(kb.PrivateBytes, password, nil)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	return &KeyPair{PrivatePEM: kb.PrivateBytes, PublicPEM: kb.PublicBytes, Password: password, signer: sv}, nil
}

// Sign signs d with k in cosign's classic format and uploads it, as
// `cosign sign --key k --tlog-upload=false d` does: a simple-signing payload
// naming d, signed, appended to the "sha256-<hex>.sig" tag.
func Sign(tb testing.TB, d name.Digest, k *KeyPair) {
	tb.Helper()
	p, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		tb.Fatalf("ocitest: payload: %v", err)
	}
	sig, err := k.signer.SignMessage(bytes.NewReader(p))
	if err != nil {
		tb.Fatalf("ocitest: sign: %v", err)
	}
	ociSig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(sig))
	if err != nil {
		tb.Fatalf("ocitest: signature: %v", err)
	}
	attachSignature(tb, d, ociSig)
}

// ReplaySignature copies the classic signatures of from onto to's signature
// tag, as an attacker who can push to the repository would: the signatures
// stay valid for their key, but their payload still names from.
func ReplaySignature(tb testing.TB, from, to name.Digest) {
	tb.Helper()
	fromTag, err := ociremote.SignatureTag(from)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	toTag, err := ociremote.SignatureTag(to)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	desc, err := remote.Get(fromTag, remoteOptions()...)
	if err != nil {
		tb.Fatalf("ocitest: read %s: %v", fromTag, err)
	}
	img, err := desc.Image()
	if err != nil {
		tb.Fatalf("ocitest: read %s: %v", fromTag, err)
	}
	if err := remote.Write(toTag, img, remoteOptions()...); err != nil {
		tb.Fatalf("ocitest: write %s: %v", toTag, err)
	}
}

// CosignSignPredicateType is the predicate cosign v3 puts in the in-toto
// statement of an image signature bundle.
const CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"

// AttachBundle signs d with k in cosign v3's default format only, as
// `cosign sign --key k --tlog-upload=false d` (v3) uploads it: a Sigstore
// bundle v0.3 holding a DSSE envelope over an in-toto statement naming d,
// pushed as an OCI referrer of d (artifactType
// application/vnd.dev.sigstore.bundle.v0.3+json). No "sha256-<hex>.sig"
// tag is written. The bundle carries no transparency log or timestamp
// entries.
func AttachBundle(tb testing.TB, d name.Digest, k *KeyPair) {
	tb.Helper()
	AttachBundleJSON(tb, d, KeyBundle(tb, d, k))
}

// KeyBundle is the bundle AttachBundle attaches, signing digest.
func KeyBundle(tb testing.TB, digest name.Digest, k *KeyPair) []byte {
	tb.Helper()
	statement := Statement(tb, digest)
	sig, err := k.signer.SignMessage(bytes.NewReader(pae(dssePayloadType, statement)))
	if err != nil {
		tb.Fatalf("ocitest: sign bundle: %v", err)
	}
	bundle, err := json.Marshal(map[string]any{
		"mediaType": BundleMediaType,
		"verificationMaterial": map[string]any{
			"publicKey": map[string]string{"hint": "upkeep-test"},
		},
		"dsseEnvelope": map[string]any{
			"payload":     base64.StdEncoding.EncodeToString(statement),
			"payloadType": dssePayloadType,
			"signatures":  []any{map[string]string{"sig": base64.StdEncoding.EncodeToString(sig)}},
		},
	})
	if err != nil {
		tb.Fatalf("ocitest: bundle: %v", err)
	}
	return bundle
}

// pae is DSSE's pre-authentication encoding, what a DSSE signature covers.
func pae(payloadType string, body []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %s %s %s %s",
		strconv.Itoa(len(payloadType)), payloadType, strconv.Itoa(len(body)), body)
}

// KeyMessageBundle is a Sigstore bundle holding a message signature (no
// DSSE envelope) by k over the manifest of d: the bundle's message digest
// is d's digest, as a bundle signing the manifest bytes has it.
func KeyMessageBundle(tb testing.TB, d name.Digest, k *KeyPair) []byte {
	tb.Helper()
	desc, err := remote.Get(d, remoteOptions()...)
	if err != nil {
		tb.Fatalf("ocitest: read %s: %v", d, err)
	}
	sig, err := k.signer.SignMessage(bytes.NewReader(desc.Manifest))
	if err != nil {
		tb.Fatalf("ocitest: sign manifest: %v", err)
	}
	sum := sha256.Sum256(desc.Manifest)
	bundle, err := json.Marshal(map[string]any{
		"mediaType":            BundleMediaType,
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "upkeep-test"}},
		"messageSignature": map[string]any{
			"messageDigest": map[string]string{"algorithm": "SHA2_256", "digest": base64.StdEncoding.EncodeToString(sum[:])},
			"signature":     base64.StdEncoding.EncodeToString(sig),
		},
	})
	if err != nil {
		tb.Fatalf("ocitest: bundle: %v", err)
	}
	return bundle
}

// attachSignature adds sig to d's classic signatures (the .sig tag), beside
// any it has, as cosign sign does.
func attachSignature(tb testing.TB, d name.Digest, sig oci.Signature) {
	tb.Helper()
	ropt := ociremote.WithRemoteOptions(remoteOptions()...)
	se, err := ociremote.SignedEntity(d, ropt)
	if err != nil {
		tb.Fatalf("ocitest: read %s: %v", d, err)
	}
	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		tb.Fatalf("ocitest: attach signature: %v", err)
	}
	if err := ociremote.WriteSignatures(d.Repository, se, ropt); err != nil {
		tb.Fatalf("ocitest: write signatures for %s: %v", d, err)
	}
}
