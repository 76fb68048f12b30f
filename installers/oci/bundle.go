package oci

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

var timeZero time.Time

// bundleArtifactPrefix starts the media type of every Sigstore bundle
// version ("application/vnd.dev.sigstore.bundle.v0.3+json").
const bundleArtifactPrefix = "application/vnd.dev.sigstore.bundle"

// cosignSignPredicate is the in-toto predicate type of an image signature
// in cosign's bundle format; other predicates are attestations (SLSA
// provenance, SBOMs), which say something about an image but do not
// approve it.
const cosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"

// maxBundles bounds how many bundle referrers of one digest are read.
const maxBundles = 16

// fetchedBundle is one bundle referrer of the digest being verified.
type fetchedBundle struct {
	where string // "bundle referrer sha256:…", for messages
	b     *bundle.Bundle
	err   error // could not be read
}

// bundles lists d's Sigstore bundle referrers (OCI 1.1 referrers API, or
// the "sha256-<hex>" fallback tag index, which remote.Referrers reads when
// the registry has no API) and reads each bundle, bounded in number and
// size. A registry failure is returned; an unreadable bundle is kept with
// its error, to be reported.
func (v *Verifier) bundles(ctx context.Context, d name.Digest, ropts []remote.Option) ([]fetchedBundle, error) {
	idx, err := remote.Referrers(d, ropts...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list referrers of %s: %w", d.DigestStr(), err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read referrers of %s: %w", d.DigestStr(), err)
	}
	var out []fetchedBundle
	for _, desc := range m.Manifests {
		if !isBundleDescriptor(desc) {
			continue
		}
		if len(out) == maxBundles {
			v.log.Debug("more bundle referrers than read", "digest", d.DigestStr(), "max", maxBundles)
			break
		}
		fb := fetchedBundle{where: "bundle referrer " + desc.Digest.String()}
		raw, err := v.readBundle(ctx, d.Context().Digest(desc.Digest.String()), ropts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			fb.err = err
			out = append(out, fb)
			continue
		}
		var b bundle.Bundle
		if err := b.UnmarshalJSON(raw); err != nil {
			fb.err = fmt.Errorf("not a valid Sigstore bundle: %w", err)
		} else {
			fb.b = &b
		}
		out = append(out, fb)
	}
	return out, nil
}

// readBundle reads the bundle layer of a referrer manifest. The layer's
// content is checked against its digest as it is read.
func (v *Verifier) readBundle(ctx context.Context, ref name.Digest, ropts []remote.Option) ([]byte, error) {
	img, err := remote.Image(ref, ropts...)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("manifest has no layer")
	}
	layerDesc := m.Layers[0]
	for _, l := range m.Layers {
		if strings.HasPrefix(string(l.MediaType), bundleArtifactPrefix) {
			layerDesc = l
			break
		}
	}
	if layerDesc.Size > v.opts.MaxBlobSize {
		return nil, fmt.Errorf("bundle layer of %d bytes is above the limit of %d", layerDesc.Size, v.opts.MaxBlobSize)
	}
	layer, err := img.LayerByDigest(layerDesc.Digest)
	if err != nil {
		return nil, fmt.Errorf("read bundle layer: %w", err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, fmt.Errorf("read bundle layer: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, v.opts.MaxBlobSize+1))
	if err != nil {
		return nil, fmt.Errorf("read bundle layer: %w", err)
	}
	if int64(len(b)) > v.opts.MaxBlobSize {
		return nil, fmt.Errorf("bundle layer is above the limit of %d bytes", v.opts.MaxBlobSize)
	}
	return b, nil
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

// finding is why one signature or bundle did not satisfy the policy.
type finding struct {
	kind   error
	where  string
	detail string
	cause  error // already in detail; kept for errors.As
}

func (f finding) String() string { return f.where + ": " + f.detail }

// bundleVerdict is what one bundle proved: a keyless identity matched, or
// these keys signed.
type bundleVerdict struct {
	identity string   // "subject S from issuer I" when keyless matched
	keys     []string // key IDs that verified it
}

// checkBundle verifies one bundle for digest d under policy c. done says
// which keys have already signed (they are not tried again).
func (v *Verifier) checkBundle(ctx context.Context, fb fetchedBundle, d name.Digest, isIndex bool, c *compiled, done map[string]bool, ropts []remote.Option) (bundleVerdict, *finding) {
	fail := func(kind error, format string, a ...any) (bundleVerdict, *finding) {
		return bundleVerdict{}, &finding{kind: kind, where: fb.where, detail: fmt.Sprintf(format, a...)}
	}
	if fb.err != nil {
		return fail(ErrBadBundle, "%v", fb.err)
	}
	b := fb.b
	want, err := hex.DecodeString(strings.TrimPrefix(d.DigestStr(), "sha256:"))
	if err != nil {
		return fail(ErrBadBundle, "digest %s: %v", d.DigestStr(), err)
	}
	// What the bundle says it signs, checked before any cryptography so
	// that a replayed bundle is named as such; sigstore-go checks the same
	// binding again, over the verified content.
	signed, predicate, err := signedDigests(b)
	if err != nil {
		return fail(ErrBadBundle, "%v", err)
	}
	if predicate != "" && predicate != cosignSignPredicate {
		return fail(ErrBadBundle, "is an attestation (in-toto predicate %s), not an image signature (predicate %s)", predicate, cosignSignPredicate)
	}
	if !containsDigest(signed, want) {
		return fail(ErrOtherDigest, "signs %s, not this digest: %s", strings.Join(signed, ", "), v.otherDigestWhy(ctx, d, signed, isIndex, ropts))
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return fail(ErrBadBundle, "verification material: %v", err)
	}
	pol := verify.NewPolicy(verify.WithArtifactDigest("sha256", want), verify.WithKey())
	if cert := vc.Certificate(); cert != nil {
		sum, err := certificate.SummarizeCertificate(cert)
		if err != nil {
			return fail(ErrBadBundle, "certificate: %v", err)
		}
		who := fmt.Sprintf("certificate for subject %q from issuer %q, valid %s to %s", sum.SubjectAlternativeName, sum.Extensions.Issuer,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
		if c.keyless == nil {
			return fail(ErrNoMatchingSignature, "is keyless (%s), but the policy trusts keys only", who)
		}
		opts := []verify.PolicyOption{}
		for _, id := range c.identities {
			opts = append(opts, verify.WithCertificateIdentity(id.cert))
		}
		_, err = c.keyless.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", want), opts...))
		if err == nil {
			return bundleVerdict{identity: fmt.Sprintf("subject %q from issuer %q", sum.SubjectAlternativeName, sum.Extensions.Issuer)}, nil
		}
		kind, why := classifyKeyless(err, cert, sum, c)
		return fail(kind, "%s (%s): %v", why, who, err)
	}
	if len(c.keys) == 0 {
		return fail(ErrNoMatchingSignature, "is signed with a key, but the policy trusts keyless identities only")
	}
	var verdict bundleVerdict
	var errs []string
	tlogBad := false
	for i, k := range c.keys {
		if done[k.id] {
			continue
		}
		if _, err := c.keyVerify[i].Verify(b, pol); err != nil {
			msg := err.Error()
			if strings.Contains(msg, "log inclusion") || strings.Contains(msg, "timestamps") {
				tlogBad = true
			}
			errs = append(errs, fmt.Sprintf("%s %s: %v", k.label, k.id, err))
			continue
		}
		verdict.keys = append(verdict.keys, k.id)
	}
	if len(verdict.keys) > 0 {
		return verdict, nil
	}
	if len(errs) == 0 { // every key already counted through another signature
		return verdict, nil
	}
	if tlogBad {
		return fail(ErrTlogOrTimestamp, "the policy's %s requires a transparency log entry and a verified timestamp: %s", c.rootName, strings.Join(errs, "; "))
	}
	return fail(ErrNoMatchingSignature, "no configured key verifies it (another key signed it, or it was altered): %s", strings.Join(errs, "; "))
}

// identityMismatch says which half of a keyless certificate's identity no
// trusted identity accepts: its subject, its OIDC issuer, or both.
func (c *compiled) identityMismatch(sum certificate.Summary) string {
	var subjOK, issOK bool
	for _, id := range c.identities {
		subjOK = subjOK || id.subjectMatches(sum.SubjectAlternativeName)
		issOK = issOK || id.issuerMatches(sum.Extensions.Issuer)
	}
	switch {
	case subjOK && !issOK:
		return "the certificate's subject is trusted but its OIDC issuer is not; " + c.describe()
	case !subjOK && issOK:
		return "the certificate's subject is not trusted (its issuer is); " + c.describe()
	default:
		return "neither the certificate's subject nor its issuer is trusted; " + c.describe()
	}
}

// classifyKeyless names what failed in a keyless bundle, from the stage
// sigstore-go reports and from the certificate itself.
func classifyKeyless(err error, cert *x509.Certificate, sum certificate.Summary, c *compiled) (error, string) {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "failed to verify certificate identity"):
		return ErrWrongIdentity, c.identityMismatch(sum)
	case strings.Contains(msg, "integrated time outside certificate validity"):
		return ErrTlogOrTimestamp, "the certificate had expired (or was not yet valid) when the signature was logged, and no verified timestamp falls within its validity"
	case strings.Contains(msg, "failed to verify log inclusion"):
		return ErrTlogOrTimestamp, "the transparency log entry does not verify against " + c.rootName
	case strings.Contains(msg, "failed to verify timestamps"):
		return ErrTlogOrTimestamp, "no verified timestamp (a signed timestamp or a logged time) from " + c.rootName
	case strings.Contains(msg, "failed to verify leaf certificate"):
		if chainsToRoot(cert, c) {
			return ErrTlogOrTimestamp, "the certificate had expired (or was not yet valid) at every verified timestamp"
		}
		return ErrWrongIdentity, "the certificate was not issued by a certificate authority of " + c.rootName
	case strings.Contains(msg, "failed to verify signed certificate timestamp"):
		return ErrTlogOrTimestamp, "the certificate carries no signed certificate timestamp (SCT) that verifies with a CT log of " + c.rootName
	case strings.Contains(msg, "failed to verify signature"):
		return ErrBadBundle, "the signature does not verify over the bundle's content with the bundle's own certificate: the bundle was altered"
	}
	return ErrBadBundle, "the bundle does not verify"
}

// chainsToRoot says whether cert chains to one of the trusted CAs at some
// time within its own validity, to tell an expired certificate from one of
// an unknown CA.
func chainsToRoot(cert *x509.Certificate, c *compiled) bool {
	at := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	for _, ca := range c.trusted.FulcioCertificateAuthorities() {
		if _, err := ca.Verify(cert, at); err == nil {
			return true
		}
	}
	return false
}

// signedDigests returns the sha256 digests (hex) that b claims to sign and,
// for DSSE, the in-toto predicate type. Nothing here is verified yet.
func signedDigests(b *bundle.Bundle) ([]string, string, error) {
	sc, err := b.SignatureContent()
	if err != nil {
		return nil, "", fmt.Errorf("signature content: %w", err)
	}
	if env := sc.EnvelopeContent(); env != nil {
		st, err := env.Statement()
		if err != nil {
			return nil, "", fmt.Errorf("DSSE envelope: not an in-toto statement: %w", err)
		}
		var out []string
		for _, s := range st.GetSubject() {
			if h, ok := s.GetDigest()["sha256"]; ok {
				out = append(out, "sha256:"+h)
			}
		}
		if len(out) == 0 {
			return nil, "", fmt.Errorf("the in-toto statement names no sha256 subject")
		}
		return out, st.GetPredicateType(), nil
	}
	if ms := sc.MessageSignatureContent(); ms != nil {
		if ms.DigestAlgorithm() != "SHA2_256" {
			return nil, "", fmt.Errorf("message signature over a %s digest; want SHA2_256", ms.DigestAlgorithm())
		}
		return []string{"sha256:" + hex.EncodeToString(ms.Digest())}, "", nil
	}
	return nil, "", fmt.Errorf("neither a DSSE envelope nor a message signature")
}

func containsDigest(signed []string, want []byte) bool {
	w := "sha256:" + hex.EncodeToString(want)
	for _, s := range signed {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

// otherDigestWhy says what the digests a bundle signs are, seen from d's
// repository: a platform manifest of d's index, another image of the
// repository (a bundle copied from an older image), or unknown here.
func (v *Verifier) otherDigestWhy(ctx context.Context, d name.Digest, signed []string, isIndex bool, ropts []remote.Option) string {
	if isIndex {
		if idx, err := remote.Index(d, ropts...); err == nil {
			if m, err := idx.IndexManifest(); err == nil {
				for _, desc := range m.Manifests {
					for _, s := range signed {
						if desc.Digest.String() == s {
							return "that is a platform manifest of this index; sign the index digest " + d.DigestStr() + ", which is what the workload is pinned to"
						}
					}
				}
			}
		}
	}
	for i, s := range signed {
		if i == 4 { // a statement may name many subjects; a few HEADs say enough
			break
		}
		if _, err := remote.Head(d.Context().Digest(s), ropts...); err == nil {
			return fmt.Sprintf("%s is another image of %s, so this bundle was copied (replayed) from it; a bundle never carries over to another digest: sign this digest", s, d.Context().Name())
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "the repository holds no image with that digest: the bundle was made for another image; sign this digest"
}

// isIndexDesc says whether a manifest media type is an index.
func isIndexDesc(mt types.MediaType) bool {
	return mt == types.OCIImageIndex || mt == types.DockerManifestList
}
