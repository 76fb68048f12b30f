// Package oci pins a container image to a digest and verifies the digest's
// cosign signature against trusted public keys, so the Kubernetes updater
// only ever deploys "repo:tag@sha256:<digest>" that a trusted key signed.
//
// Supported signature format: cosign's classic one, a "sha256-<hex>.sig" tag
// in the image's repository holding simple-signing payloads signed with a
// key (what `cosign sign --key` writes in cosign v2, and in cosign v3 with
// --new-bundle-format=false --use-signing-config=false). The payload's
// digest must equal the image digest, so a signature copied from another
// digest is refused. No transparency log or certificate identity is checked:
// trust comes only from the configured keys.
//
// Not supported: cosign v3's default Sigstore bundle format (an OCI referrer
// with artifact type application/vnd.dev.sigstore.bundle.v0.3+json). cosign
// v2.6's library cannot verify those for images; a digest signed only that
// way fails with ErrBundleOnly and a message giving the command that adds a
// classic signature. Keyless (Fulcio certificate) signatures are also not
// accepted, since no identity policy is configured.
//
// Only the kube updater links this package; the host agent never does.
package oci

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cosignoci "github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Defaults for Options.
const (
	DefaultTimeout         = 30 * time.Second
	DefaultMaxManifestSize = 4 << 20 // containerd's manifest limit
	DefaultMaxBlobSize     = 4 << 20 // signature payloads are a few hundred bytes
)

// Options configure registry access. The zero value is anonymous, HTTPS-only,
// with the defaults above.
type Options struct {
	// Keychain supplies registry credentials; nil means anonymous. See
	// KeychainFromDockerConfig for pull secrets.
	Keychain authn.Keychain
	// Transport is the base HTTP transport (custom CA pool, proxy). nil
	// means go-containerregistry's default with TLS 1.2 or later. The
	// HTTPS-only policy and the size limits are applied on top of it.
	Transport http.RoundTripper
	// AllowLoopbackHTTP lets plain HTTP reach registries named localhost,
	// 127.0.0.0/8 or ::1 (tests, a node-local mirror). No other registry is
	// ever reached over plain HTTP, whatever this says.
	AllowLoopbackHTTP bool
	// Timeout bounds each Resolve or Verify call, all requests included.
	Timeout time.Duration
	// MaxManifestSize bounds manifests, indexes and referrer lists.
	MaxManifestSize int64
	// MaxBlobSize bounds every other response body (signature payloads,
	// token responses). Image layers are never downloaded.
	MaxBlobSize int64
	// KeyNames optionally label the PEM inputs of NewVerifier in errors
	// (e.g. "secret upkeep/cosign-keys key cosign.pub").
	KeyNames []string
	// Logger receives one debug line per decision; nil discards.
	Logger *slog.Logger
}

// Verifier resolves and verifies images. It is safe for concurrent use.
type Verifier struct {
	keys      []publicKey
	opts      Options
	transport http.RoundTripper
	auth      remote.Option
	log       *slog.Logger
}

// Verified is an image that passed verification.
type Verified struct {
	// Ref is the image as given, tag kept, pinned to the verified digest:
	// "repo:tag@sha256:<hex>". Deploy this, never the tag alone.
	Ref string
	// Digest is the verified digest, "sha256:<hex>".
	Digest string
	// KeyID is the SHA-256 fingerprint ("sha256:<hex>") of the PKIX DER form
	// of the public key whose signature matched.
	KeyID string
}

// NewVerifier returns a Verifier that trusts keysPEM. Each element holds one
// or more PEM public keys (cosign.pub; ECDSA, RSA or Ed25519); one valid
// signature by any of them suffices. A bad key is an error naming it.
func NewVerifier(keysPEM [][]byte, o Options) (*Verifier, error) {
	keys, err := parseKeys(keysPEM, o.KeyNames)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxManifestSize <= 0 {
		o.MaxManifestSize = DefaultMaxManifestSize
	}
	if o.MaxBlobSize <= 0 {
		o.MaxBlobSize = DefaultMaxBlobSize
	}
	base := o.Transport
	if base == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		base = t
	}
	auth := remote.WithAuth(authn.Anonymous)
	if o.Keychain != nil {
		auth = remote.WithAuthFromKeychain(o.Keychain)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{
		keys: keys,
		opts: o,
		transport: &guardTransport{
			base:              base,
			allowLoopbackHTTP: o.AllowLoopbackHTTP,
			maxManifest:       o.MaxManifestSize,
			maxBody:           o.MaxBlobSize,
		},
		auth: auth,
		log:  log,
	}, nil
}

// KeyIDs lists the fingerprints of the trusted keys, in configuration order.
func (v *Verifier) KeyIDs() []string {
	ids := make([]string, len(v.keys))
	for i, k := range v.keys {
		ids[i] = k.id
	}
	return ids
}

// Resolve returns the digest that ref (a tag, or already a digest) names now.
// For a multi-platform image the index digest is returned: that is what
// `cosign sign IMAGE:TAG` signs and what a pod spec should pin; the node
// then picks its platform's manifest from the index and checks it against
// the index by content hash. Per-platform manifests are not resolved here.
// The digest is computed from the manifest bytes, not taken from a header.
func (v *Verifier) Resolve(ctx context.Context, ref string) (name.Digest, error) {
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	r, err := parseRef(ref)
	if err != nil {
		return name.Digest{}, err
	}
	p, err := v.puller(ctx)
	if err != nil {
		return name.Digest{}, v.registryError(ctx, ref, "", err)
	}
	return v.resolve(ctx, ref, r, p)
}

// Verify resolves image and verifies the resulting digest's cosign signature
// with the trusted keys, in order, until one matches. The digest returned is
// the one whose signature was verified: the signature lookup and the payload
// check both use that digest, never the tag, so a tag moved in between
// cannot change what is returned. Errors are *Error (see the Err* kinds).
func (v *Verifier) Verify(ctx context.Context, image string) (Verified, error) {
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	r, err := parseRef(image)
	if err != nil {
		return Verified{}, err
	}
	p, err := v.puller(ctx)
	if err != nil {
		return Verified{}, v.registryError(ctx, image, "", err)
	}
	d, err := v.resolve(ctx, image, r, p)
	if err != nil {
		return Verified{}, err
	}
	res, err := v.verifyDigest(ctx, image, d, p)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			v.log.Debug("image refused", "image", image, "digest", d.DigestStr(), "reason", e.Reason(), "error", err)
		}
		return Verified{}, err
	}
	v.log.Debug("image verified", "image", image, "ref", res.Ref, "key", res.KeyID)
	return res, nil
}

// verifyDigest is the signature check proper, in order: classic signatures
// exist (else bundle-only or unsigned), one key verifies one of them over
// this digest's payload, and the accepted payload names this digest.
func (v *Verifier) verifyDigest(ctx context.Context, image string, d name.Digest, p *remote.Puller) (Verified, error) {
	dig := d.DigestStr()
	ropts := []remote.Option{remote.WithContext(ctx), remote.Reuse(p)}
	co := &cosign.CheckOpts{
		ClaimVerifier:      cosign.SimpleClaimVerifier,
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		Offline:            true,
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(ropts...)},
	}
	var mismatches keyErrors
	for _, k := range v.keys {
		co.SigVerifier = k.verifier
		sigs, _, err := cosign.VerifyImageSignatures(ctx, d, co)
		if err == nil && len(sigs) > 0 {
			if err := payloadNames(sigs[0], dig); err != nil {
				// Unreachable while SimpleClaimVerifier checks the same;
				// kept so a library change cannot pin an unverified digest.
				return Verified{}, &Error{Kind: ErrNoMatchingSignature, Image: image, Digest: dig,
					Detail: "accepted signature does not name this digest", Cause: err,
					Next: "sign this exact digest: " + SignCommand(image, dig)}
			}
			return Verified{Ref: pinned(image, dig), Digest: dig, KeyID: k.id}, nil
		}
		var none *cosign.ErrNoSignaturesFound
		var nomatch *cosign.ErrNoMatchingSignatures
		switch {
		case errors.As(err, &none):
			// No .sig tag at all: the same for every key.
			return Verified{}, v.unsignedError(ctx, image, d, ropts, err)
		case errors.As(err, &nomatch):
			mismatches = append(mismatches, keyError{key: k, err: err})
		case err == nil:
			return Verified{}, &Error{Kind: ErrRegistry, Image: image, Digest: dig,
				Detail: "cosign returned no signatures and no error", Next: "report this as a bug"}
		default:
			return Verified{}, v.registryError(ctx, image, dig, fmt.Errorf("read signatures from %s: %w", d.Context().Name(), err))
		}
	}
	return Verified{}, &Error{Kind: ErrNoMatchingSignature, Image: image, Digest: dig,
		Detail: fmt.Sprintf("the signature tag %s exists but no signature in it verifies for this digest with the %d configured key(s)", sigTag(d), len(v.keys)),
		Cause:  mismatches,
		Next: "sign this exact digest with one of the configured keys (" + SignCommand(image, dig) +
			"), or add the signer's public key; a signature copied from another digest never matches"}
}

// unsignedError tells a digest with no signature from one signed only in the
// bundle format, by listing its OCI referrers.
func (v *Verifier) unsignedError(ctx context.Context, image string, d name.Digest, ropts []remote.Option, cause error) error {
	dig := d.DigestStr()
	if bundle, ok := v.findBundleReferrer(ctx, d, ropts); ok {
		return &Error{Kind: ErrBundleOnly, Image: image, Digest: dig,
			Detail: fmt.Sprintf("no classic signature tag %s, but referrer %s is a Sigstore bundle (cosign v3's default format), which this updater does not verify", sigTag(d), bundle),
			Cause:  cause,
			Next:   "add a classic signature with the same key: " + SignCommand(image, dig)}
	}
	return &Error{Kind: ErrUnsigned, Image: image, Digest: dig,
		Detail: fmt.Sprintf("no signature tag %s and no Sigstore bundle referrer", sigTag(d)),
		Cause:  cause,
		Next:   "sign the digest with a configured key: " + SignCommand(image, dig)}
}

// bundleArtifactPrefix starts the media type of every Sigstore bundle
// version ("application/vnd.dev.sigstore.bundle.v0.3+json").
const bundleArtifactPrefix = "application/vnd.dev.sigstore.bundle"

// findBundleReferrer returns the digest of a referrer of d that is a
// Sigstore bundle. Registries report a referrer's artifactType, or its
// config media type for manifests without one; cosign's bundle manifests use
// the empty config, so its "dev.sigstore.bundle.*" annotations are checked
// too. A registry without the referrers API is read through the fallback
// tag. Failure to list referrers counts as "none": the image stays refused.
func (v *Verifier) findBundleReferrer(ctx context.Context, d name.Digest, ropts []remote.Option) (string, bool) {
	idx, err := remote.Referrers(d, ropts...)
	if err != nil {
		v.log.Debug("listing referrers failed", "digest", d.DigestStr(), "error", err)
		return "", false
	}
	m, err := idx.IndexManifest()
	if err != nil {
		v.log.Debug("reading referrers failed", "digest", d.DigestStr(), "error", err)
		return "", false
	}
	for _, desc := range m.Manifests {
		if isBundleDescriptor(desc) {
			return desc.Digest.String(), true
		}
	}
	return "", false
}

func isBundleDescriptor(desc v1.Descriptor) bool {
	if strings.HasPrefix(desc.ArtifactType, bundleArtifactPrefix) {
		return true
	}
	for k := range desc.Annotations {
		if strings.HasPrefix(k, "dev.sigstore.bundle.") {
			return true
		}
	}
	return false
}

// resolve fetches the manifest that r names and returns its digest.
func (v *Verifier) resolve(ctx context.Context, image string, r name.Reference, p *remote.Puller) (name.Digest, error) {
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.Reuse(p))
	if err != nil {
		if isNotFound(err) {
			what := "tag " + r.Identifier()
			if _, ok := r.(name.Digest); ok {
				what = "digest " + r.Identifier()
			}
			return name.Digest{}, &Error{Kind: ErrNotFound, Image: image,
				Detail: fmt.Sprintf("%s not found in %s", what, r.Context().Name()), Cause: err,
				Next: "check the image name and that this version was pushed to the registry"}
		}
		return name.Digest{}, v.registryError(ctx, image, "", fmt.Errorf("fetch manifest: %w", err))
	}
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList, types.OCIManifestSchema1, types.DockerManifestSchema2:
	default:
		return name.Digest{}, &Error{Kind: ErrRegistry, Image: image, Digest: desc.Digest.String(),
			Detail: fmt.Sprintf("manifest media type %q is not an image or image index", desc.MediaType),
			Next:   "push the image as an OCI or Docker v2 image (schema 1 is not supported)"}
	}
	return r.Context().Digest(desc.Digest.String()), nil
}

// puller shares one ping and token exchange among a call's requests.
func (v *Verifier) puller(ctx context.Context) (*remote.Puller, error) {
	return remote.NewPuller(remote.WithContext(ctx), remote.WithTransport(v.transport), v.auth, remote.WithUserAgent("upkeep-kube-updater"))
}

// registryError classifies a failure to talk to the registry.
func (v *Verifier) registryError(ctx context.Context, image, digest string, err error) error {
	e := &Error{Kind: ErrRegistry, Image: image, Digest: digest, Cause: err,
		Next: "check that the registry is reachable over HTTPS from the updater and that the pull secret grants read access"}
	var terr *transport.Error
	switch {
	case errors.Is(err, errPlainHTTP):
		e.Next = "serve the registry over HTTPS (plain HTTP is only allowed for loopback registries)"
	case ctx.Err() != nil:
		e.Detail = fmt.Sprintf("gave up after %s", v.opts.Timeout)
		e.Next = "check that the registry is reachable from the updater, or raise the timeout"
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		e.Detail = "access denied"
		e.Next = "give the updater a pull secret with read access to this repository"
	}
	return e
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// parseRef parses an image reference. A reference without tag or digest
// means ":latest", as everywhere else.
func parseRef(image string) (name.Reference, error) {
	r, err := name.ParseReference(image)
	if err != nil {
		return nil, &Error{Kind: ErrBadReference, Image: fmt.Sprintf("%q", image), Cause: err,
			Next: "write the image as registry/repository:tag"}
	}
	return r, nil
}

// sigTag names the classic signature tag of d, for messages.
func sigTag(d name.Digest) string {
	return d.Context().Name() + ":" + strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig"
}

// payloadNames checks that sig's simple-signing payload claims digest.
func payloadNames(sig cosignoci.Signature, digest string) error {
	b, err := sig.Payload()
	if err != nil {
		return err
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	if got := p.Critical.Image.DockerManifestDigest; got != digest {
		return fmt.Errorf("payload names digest %q", got)
	}
	return nil
}

// keyError is one key's verdict on a digest's signatures.
type keyError struct {
	key publicKey
	err error
}

// keyErrors flattens per-key verdicts into one line, and unwraps to each.
type keyErrors []keyError

func (ke keyErrors) Error() string {
	parts := make([]string, len(ke))
	for i, e := range ke {
		parts[i] = fmt.Sprintf("%s %s: %s", e.key.label, e.key.id, strings.Join(strings.Fields(e.err.Error()), " "))
	}
	return strings.Join(parts, "; ")
}

func (ke keyErrors) Unwrap() []error {
	errs := make([]error, len(ke))
	for i, e := range ke {
		errs[i] = e.err
	}
	return errs
}
