// Package oci pins a container image to a digest and verifies that the
// digest was signed as a trust policy requires, so the Kubernetes updater
// only ever deploys "repo:tag@sha256:<digest>" that a trusted signer signed.
//
// Signature formats read, for the digest the tag resolves to:
//   - Sigstore bundles (cosign v3's default; v2.4+ with --new-bundle-format)
//     stored as OCI referrers with artifact type
//     application/vnd.dev.sigstore.bundle.v0.3+json, through the OCI 1.1
//     referrers API or, on registries without it, the "sha256-<hex>"
//     referrers fallback tag. Verified with sigstore-go: a DSSE in-toto
//     statement (predicate https://sigstore.dev/cosign/sign/v1) whose
//     subject is this digest, or a message signature over it.
//   - classic cosign signatures: the "sha256-<hex>.sig" tag holding
//     simple-signing payloads naming this digest (cosign v2's default),
//     signed with a key, or keyless: the layer carries the Fulcio
//     certificate and the Rekor bundle (signed entry timestamp), verified
//     offline with cosign's verifier against the policy's trusted root.
//
// A policy (Policy) trusts public keys (optionally N of M distinct keys),
// keyless identities (Fulcio certificate subject and OIDC issuer, exact or
// regexp) checked against a trusted_root.json read offline, or both. For
// keyless bundles the certificate must chain to the trusted root's CA, the
// transparency log entry's inclusion proof must verify, and a verified
// timestamp (a timestamp authority's signed timestamp, or a logged time
// with a signed entry timestamp) must fall within the certificate's
// validity; for a classic keyless signature the signed entry timestamp
// must verify, its entry body bind this signature, and the logged time
// fall within the certificate's validity. When the trusted root lists CT
// logs, the certificate must embed a verified SCT. Key-signed bundles need
// a log entry and timestamp only when
// the policy has a trusted root. Refusals are *Error, naming image,
// digest, what was found and what to do.
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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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
	// CacheSize bounds how many verified (policy, digest) pairs are
	// remembered, so a digest verified once is not fetched and checked
	// again (the tag is still resolved every time). A signature that
	// verified stays valid for that digest and policy; refusals are never
	// remembered. 0 means DefaultCacheSize, negative disables.
	CacheSize int
}

// DefaultCacheSize is Options.CacheSize's default.
const DefaultCacheSize = 1024

// Verifier resolves and verifies images. It is safe for concurrent use.
type Verifier struct {
	policies      map[string]*compiled
	channels      map[string]string
	defaultPolicy string
	opts          Options
	transport     http.RoundTripper
	auth          remote.Option
	log           *slog.Logger

	mu    sync.Mutex
	cache map[string]Verified // policy + "\x00" + digest -> result
	order []string            // insertion order, for eviction
}

// Verified is an image that passed verification.
type Verified struct {
	// Ref is the image as given, tag kept, pinned to the verified digest:
	// "repo:tag@sha256:<hex>". Deploy this, never the tag alone.
	Ref string
	// Digest is the verified digest, "sha256:<hex>".
	Digest string
	// KeyID is the SHA-256 fingerprint ("sha256:<hex>") of the PKIX DER form
	// of the public key whose signature matched; with a threshold, the
	// fingerprints of the keys that signed, comma-separated; "" for keyless.
	KeyID string
	// Identity is the keyless signer, "subject S from issuer I"; "" for keys.
	Identity string
	// Policy names the trust policy that was satisfied.
	Policy string
	// Format is "bundle" or "classic": where the accepted signature was.
	Format string
}

// Signer says who signed, for messages: the key ID(s) or the identity.
func (r Verified) Signer() string {
	if r.Identity != "" {
		return "keyless " + r.Identity
	}
	return r.KeyID
}

// NewVerifier returns a Verifier with one policy, DefaultPolicy, trusting
// keysPEM. Each element holds one or more PEM public keys (cosign.pub;
// ECDSA, RSA or Ed25519); one valid signature by any of them suffices. A bad
// key is an error naming it.
func NewVerifier(keysPEM [][]byte, o Options) (*Verifier, error) {
	if len(keysPEM) == 0 {
		_, err := parseKeys(nil, nil)
		return nil, err
	}
	return New(Trust{Policies: map[string]Policy{DefaultPolicy: {KeysPEM: keysPEM, KeyNames: o.KeyNames}}}, o)
}

// New returns a Verifier for t's policies. Every policy is checked here:
// a bad key, identity or trusted root is an error naming the policy.
func New(t Trust, o Options) (*Verifier, error) {
	if len(t.Policies) == 0 {
		return nil, errors.New("no trust policy: give public keys or a trust policy file")
	}
	v := &Verifier{policies: map[string]*compiled{}, channels: t.Channels, defaultPolicy: t.Default, cache: map[string]Verified{}}
	for _, name := range sortedKeys(t.Policies) {
		c, err := compile(name, t.Policies[name])
		if err != nil {
			return nil, err
		}
		v.policies[name] = c
	}
	for ch, p := range t.Channels {
		if _, ok := v.policies[p]; !ok {
			return nil, fmt.Errorf("channel %s: policy %q is not defined", ch, p)
		}
	}
	if v.defaultPolicy == "" {
		if _, ok := v.policies[DefaultPolicy]; ok {
			v.defaultPolicy = DefaultPolicy
		}
	} else if _, ok := v.policies[v.defaultPolicy]; !ok {
		return nil, fmt.Errorf("default policy %q is not defined", v.defaultPolicy)
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
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	base := o.Transport
	if base == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		base = t
	}
	v.auth = remote.WithAuth(authn.Anonymous)
	if o.Keychain != nil {
		v.auth = remote.WithAuthFromKeychain(o.Keychain)
	}
	v.log = o.Logger
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.opts = o
	v.transport = &guardTransport{
		base:              base,
		allowLoopbackHTTP: o.AllowLoopbackHTTP,
		maxManifest:       o.MaxManifestSize,
		maxBody:           o.MaxBlobSize,
	}
	return v, nil
}

// KeyIDs lists the fingerprints of the trusted keys of every policy, in
// policy name order then configuration order.
func (v *Verifier) KeyIDs() []string {
	var ids []string
	for _, name := range sortedKeys(v.policies) {
		for _, k := range v.policies[name].keys {
			ids = append(ids, k.id)
		}
	}
	return ids
}

// Policies describes each policy in one line, for the startup log.
func (v *Verifier) Policies() []string {
	var out []string
	for _, name := range sortedKeys(v.policies) {
		out = append(out, v.policies[name].describe())
	}
	return out
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
	d, _, err := v.resolve(ctx, ref, r, p)
	return d, err
}

// Verify is VerifyIn with the default policy.
func (v *Verifier) Verify(ctx context.Context, image string) (Verified, error) {
	return v.VerifyIn(ctx, image, Scope{})
}

// VerifyIn resolves image and verifies the resulting digest against the
// policy that scope selects. The digest returned is the one whose
// signatures were verified: the signature lookup and the digest binding
// both use that digest, never the tag, so a tag moved in between cannot
// change what is returned. Errors are *Error (see the Err* kinds).
func (v *Verifier) VerifyIn(ctx context.Context, image string, scope Scope) (Verified, error) {
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
	d, isIndex, err := v.resolve(ctx, image, r, p)
	if err != nil {
		return Verified{}, err
	}
	pol, why, err := v.policyFor(scope)
	if err != nil {
		return Verified{}, &Error{Kind: ErrNoPolicy, Image: image, Digest: d.DigestStr(), Detail: err.Error(),
			Next: "name a defined policy in the workload's annotation upkeep.dev/trust-policy, map the channel to one, or set default: in the trust policy file"}
	}
	key := pol.name + "\x00" + d.String()
	if res, ok := v.cached(key); ok {
		res.Ref = pinned(image, res.Digest)
		return res, nil
	}
	res, err := v.verifyDigest(ctx, image, d, isIndex, p, pol)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			v.log.Debug("image refused", "image", image, "digest", d.DigestStr(), "policy", pol.name, "policyFrom", why, "reason", e.Reason(), "error", err)
		}
		return Verified{}, err
	}
	v.remember(key, res)
	v.log.Debug("image verified", "image", image, "ref", res.Ref, "policy", pol.name, "signer", res.Signer(), "format", res.Format)
	return res, nil
}

func (v *Verifier) cached(key string) (Verified, bool) {
	if v.opts.CacheSize < 0 {
		return Verified{}, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.cache[key]
	return r, ok
}

func (v *Verifier) remember(key string, r Verified) {
	if v.opts.CacheSize < 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.cache[key]; ok {
		return
	}
	if len(v.order) >= v.opts.CacheSize {
		delete(v.cache, v.order[0])
		v.order = v.order[1:]
	}
	v.cache[key] = r
	v.order = append(v.order, key)
}

// verifyDigest checks d against policy c: classic signatures first, one per
// key, then the bundle referrers, until the policy is satisfied (a keyless
// identity matched, or threshold distinct keys signed). Each signature that
// did not count is kept as a finding for the refusal.
func (v *Verifier) verifyDigest(ctx context.Context, image string, d name.Digest, isIndex bool, p *remote.Puller, c *compiled) (Verified, error) {
	dig := d.DigestStr()
	ropts := []remote.Option{remote.WithContext(ctx), remote.Reuse(p)}
	ok := func(format, identity string, keys []string) (Verified, error) {
		return Verified{Ref: pinned(image, dig), Digest: dig, KeyID: strings.Join(keys, ","), Identity: identity, Policy: c.name, Format: format}, nil
	}
	signedBy := map[string]bool{}
	var signers []string
	var findings []finding
	classicSeen := false
	var causes []error // cosign's errors, reachable with errors.As
	if len(c.keys) > 0 {
		co := &cosign.CheckOpts{
			ClaimVerifier:      cosign.SimpleClaimVerifier,
			IgnoreTlog:         true,
			IgnoreSCT:          true,
			Offline:            true,
			RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(ropts...)},
		}
		var mismatches keyErrors
		var noneErr error
	keys:
		for _, k := range c.keys {
			co.SigVerifier = k.verifier
			sigs, _, err := cosign.VerifyImageSignatures(ctx, d, co)
			var none *cosign.ErrNoSignaturesFound
			var nomatch *cosign.ErrNoMatchingSignatures
			switch {
			case err == nil && len(sigs) > 0:
				classicSeen = true
				if err := payloadNames(sigs[0], dig); err != nil {
					// Unreachable while SimpleClaimVerifier checks the same;
					// kept so a library change cannot pin an unverified digest.
					mismatches = append(mismatches, keyError{key: k, err: err})
					continue
				}
				signedBy[k.id] = true
				signers = append(signers, k.id)
				if len(signers) >= c.threshold {
					return ok("classic", "", signers)
				}
			case errors.As(err, &none):
				noneErr = err
				break keys // no .sig tag at all: the same for every key
			case errors.As(err, &nomatch):
				classicSeen = true
				mismatches = append(mismatches, keyError{key: k, err: err})
			case err == nil:
				return Verified{}, &Error{Kind: ErrRegistry, Image: image, Digest: dig,
					Detail: "cosign returned no signatures and no error", Next: "report this as a bug"}
			default:
				return Verified{}, v.registryError(ctx, image, dig, fmt.Errorf("read signatures from %s: %w", d.Context().Name(), err))
			}
		}
		if len(mismatches) > 0 {
			findings = append(findings, finding{kind: ErrNoMatchingSignature, where: "signature tag " + sigTag(d),
				detail: fmt.Sprintf("no signature in it verifies for this digest with the key(s) %s (a signature copied from another digest never matches)", mismatches.Error()),
				cause:  mismatches})
		}
		if noneErr != nil {
			causes = append(causes, noneErr)
		}
	}
	if len(c.identities) > 0 {
		id, seen, fs, err := v.classicKeyless(ctx, d, isIndex, c, ropts)
		if err != nil {
			return Verified{}, v.registryError(ctx, image, dig, err)
		}
		if id != "" {
			return ok("classic", id, nil)
		}
		classicSeen = classicSeen || seen
		findings = append(findings, fs...)
	}
	bundles, err := v.bundles(ctx, d, ropts)
	if err != nil {
		return Verified{}, v.registryError(ctx, image, dig, err)
	}
	for _, fb := range bundles {
		verdict, f := v.checkBundle(ctx, fb, d, isIndex, c, signedBy, ropts)
		if f != nil {
			findings = append(findings, *f)
			continue
		}
		if verdict.identity != "" {
			return ok("bundle", verdict.identity, nil)
		}
		for _, id := range verdict.keys {
			if !signedBy[id] {
				signedBy[id] = true
				signers = append(signers, id)
			}
		}
		if len(c.keys) > 0 && len(signers) >= c.threshold {
			return ok("bundle", "", signers)
		}
	}
	return Verified{}, v.refusal(image, d, c, classicSeen, bundles, signers, findings, causes)
}

// refusal explains why d did not satisfy c. The kind is the most telling
// of the findings: a bundle for another digest, then a wrong identity, a
// bad log entry or timestamp, an altered bundle, and last a wrong key.
func (v *Verifier) refusal(image string, d name.Digest, c *compiled, classicSeen bool, bundles []fetchedBundle, signers []string, findings []finding, causes []error) error {
	dig := d.DigestStr()
	for _, f := range findings {
		if f.cause != nil {
			causes = append(causes, f.cause)
		}
	}
	var cause error
	if len(causes) > 0 {
		cause = hiddenCauses(causes)
	}
	next := "sign the digest with a signer the policy trusts (" + c.describe() + "): " + v.signHint(image, dig, c)
	if !classicSeen && len(bundles) == 0 {
		return &Error{Kind: ErrUnsigned, Image: image, Digest: dig,
			Detail: fmt.Sprintf("no signature tag %s and no Sigstore bundle referrer", sigTag(d)), Next: next, Cause: cause}
	}
	if len(signers) > 0 {
		return &Error{Kind: ErrThreshold, Image: image, Digest: dig,
			Detail: fmt.Sprintf("%d distinct trusted key(s) signed it (%s), the policy %q needs %d%s", len(signers), strings.Join(signers, ", "), c.name, c.threshold, findingsText(findings)),
			Next:   fmt.Sprintf("have %d more of the policy's keys sign this digest: %s", c.threshold-len(signers), SignCommand(image, dig)), Cause: cause}
	}
	rank := []error{ErrOtherDigest, ErrWrongIdentity, ErrTlogOrTimestamp, ErrBadBundle, ErrNoMatchingSignature}
	kind := ErrNoMatchingSignature
	for _, k := range rank {
		if slices.ContainsFunc(findings, func(f finding) bool { return f.kind == k }) {
			kind = k
			break
		}
	}
	var parts []string
	for _, f := range findings {
		parts = append(parts, f.String())
	}
	switch kind {
	case ErrWrongIdentity:
		next = "sign with an identity the policy trusts, or add the signer's identity (issuer and subject) to policy " + fmt.Sprintf("%q", c.name)
	case ErrTlogOrTimestamp:
		next = "sign again with cosign's defaults (transparency log upload and a timestamp), and check that " + c.rootName + " is the trusted root of the Sigstore instance that signed"
	case ErrNoMatchingSignature:
		next = "sign this exact digest with one of the configured keys (" + SignCommand(image, dig) + "), or add the signer's public key to policy " + fmt.Sprintf("%q", c.name)
	}
	return &Error{Kind: kind, Image: image, Digest: dig, Detail: strings.Join(parts, "; "), Next: next, Cause: cause}
}

// hiddenCauses lets errors.As reach the underlying errors whose text the
// detail already says.
type hiddenCauses []error

func (hiddenCauses) Error() string     { return "" }
func (h hiddenCauses) Unwrap() []error { return h }

func findingsText(fs []finding) string {
	if len(fs) == 0 {
		return ""
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return "; other signatures: " + strings.Join(parts, "; ")
}

func (v *Verifier) signHint(image, dig string, c *compiled) string {
	if len(c.keys) == 0 {
		return SignKeylessCommand(image, dig)
	}
	return SignCommand(image, dig)
}

// resolve fetches the manifest that r names and returns its digest.
func (v *Verifier) resolve(ctx context.Context, image string, r name.Reference, p *remote.Puller) (name.Digest, bool, error) {
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.Reuse(p))
	if err != nil {
		if isNotFound(err) {
			what := "tag " + r.Identifier()
			if _, ok := r.(name.Digest); ok {
				what = "digest " + r.Identifier()
			}
			return name.Digest{}, false, &Error{Kind: ErrNotFound, Image: image,
				Detail: fmt.Sprintf("%s not found in %s", what, r.Context().Name()), Cause: err,
				Next: "check the image name and that this version was pushed to the registry"}
		}
		return name.Digest{}, false, v.registryError(ctx, image, "", fmt.Errorf("fetch manifest: %w", err))
	}
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList, types.OCIManifestSchema1, types.DockerManifestSchema2:
	default:
		return name.Digest{}, false, &Error{Kind: ErrRegistry, Image: image, Digest: desc.Digest.String(),
			Detail: fmt.Sprintf("manifest media type %q is not an image or image index", desc.MediaType),
			Next:   "push the image as an OCI or Docker v2 image (schema 1 is not supported)"}
	}
	return r.Context().Digest(desc.Digest.String()), isIndexDesc(desc.MediaType), nil
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
