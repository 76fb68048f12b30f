package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cosignoci "github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// maxClassicSignatures bounds how many signatures of one ".sig" tag are
// checked against keyless identities.
const maxClassicSignatures = 16

// classicKeylessOpts are the cosign checks of a classic keyless signature
// (cosign v2's default: the ".sig" tag with certificate and Rekor bundle
// annotations) under c, all offline against c's trusted root:
// the Rekor bundle's signed entry timestamp verifies with a log key of the
// root (found by log ID) and its body binds this signature, certificate
// and payload digest; the certificate chains to a Fulcio CA of the root,
// carries a verified SCT when the root lists CT logs, matches one of the
// identities, and was valid at the logged time (and at an RFC 3161
// timestamp's time, when one is attached); the payload names the digest.
func classicKeylessOpts(c *compiled) *cosign.CheckOpts {
	ids := make([]cosign.Identity, len(c.identities))
	for i, id := range c.identities {
		ids[i] = cosign.Identity{Issuer: id.Issuer, IssuerRegExp: id.IssuerRegExp, Subject: id.Subject, SubjectRegExp: id.SubjectRegExp}
	}
	return &cosign.CheckOpts{
		ClaimVerifier:       cosign.SimpleClaimVerifier,
		TrustedMaterial:     c.trusted,
		Identities:          ids,
		Offline:             true, // no Rekor lookup: the bundle annotation must carry the entry
		IgnoreSCT:           len(c.trusted.CTLogs()) == 0,
		UseSignedTimestamps: len(c.trusted.TimestampingAuthorities()) > 0,
	}
}

// classicKeyless checks the classic signatures of d against c's keyless
// identities. It returns the identity that matched, whether the tag held
// any signature, and a finding for each signature that did not count.
func (v *Verifier) classicKeyless(ctx context.Context, d name.Digest, isIndex bool, c *compiled, ropts []remote.Option) (string, bool, []finding, error) {
	oo := ociremote.WithRemoteOptions(ropts...)
	st, err := ociremote.SignatureTag(d, oo)
	if err != nil {
		return "", false, nil, err
	}
	sigs, err := ociremote.Signatures(st, oo)
	if err != nil {
		return "", false, nil, fmt.Errorf("read signatures from %s: %w", sigTag(d), err)
	}
	list, err := sigs.Get()
	if err != nil {
		return "", false, nil, fmt.Errorf("read signatures from %s: %w", sigTag(d), err)
	}
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return "", false, nil, err
	}
	var findings []finding
	for i, sig := range list {
		if i == maxClassicSignatures {
			v.log.Debug("more classic signatures than read", "digest", d.DigestStr(), "max", maxClassicSignatures)
			break
		}
		where := fmt.Sprintf("signature tag %s layer %d", sigTag(d), i+1)
		if dg, err := sig.Digest(); err == nil {
			where = fmt.Sprintf("signature tag %s layer %s", sigTag(d), dg)
		}
		id, f := v.checkClassicKeyless(ctx, sig, where, d, h, isIndex, c, ropts)
		if f == nil {
			return id, true, nil, nil
		}
		if f.kind != nil {
			findings = append(findings, *f)
		}
	}
	return "", len(list) > 0, findings, nil
}

// checkClassicKeyless verifies one classic signature. A finding with a nil
// kind is a key-signed signature that the key checks already judged.
func (v *Verifier) checkClassicKeyless(ctx context.Context, sig cosignoci.Signature, where string, d name.Digest, h v1.Hash, isIndex bool, c *compiled, ropts []remote.Option) (string, *finding) {
	fail := func(kind error, format string, a ...any) (string, *finding) {
		return "", &finding{kind: kind, where: where, detail: fmt.Sprintf(format, a...)}
	}
	cert, err := sig.Cert()
	if err != nil {
		return fail(ErrBadBundle, "the certificate annotation dev.sigstore.cosign/certificate cannot be read: %v", err)
	}
	if cert == nil {
		if len(c.keys) > 0 {
			return "", &finding{}
		}
		return fail(ErrNoMatchingSignature, "is signed with a key (no certificate), but %s", c.describe())
	}
	// What the payload says it signs, read before any cryptography so that a
	// replayed signature is named as such; cosign's claim check repeats it
	// over the verified payload.
	raw, err := sig.Payload()
	if err != nil {
		return fail(ErrBadBundle, "payload: %v", err)
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(raw, &p); err != nil {
		return fail(ErrBadBundle, "payload is not a simple-signing document: %v", err)
	}
	if got := p.Critical.Image.DockerManifestDigest; got != d.DigestStr() {
		return fail(ErrOtherDigest, "its payload names %s, not this digest: %s", got, v.otherDigestWhy(ctx, d, []string{got}, isIndex, ropts))
	}
	sum, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return fail(ErrBadBundle, "certificate: %v", err)
	}
	who := fmt.Sprintf("certificate for subject %q from issuer %q, valid %s to %s", sum.SubjectAlternativeName, sum.Extensions.Issuer,
		cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	rb, err := sig.Bundle()
	if err != nil {
		return fail(ErrTlogOrTimestamp, "the Rekor bundle annotation dev.sigstore.cosign/bundle cannot be read (%s): %v", who, err)
	}
	if rb == nil {
		return fail(ErrTlogOrTimestamp, "has no Rekor bundle annotation dev.sigstore.cosign/bundle (%s): a keyless signature needs its transparency log entry, verified offline", who)
	}
	if _, err := cosign.VerifyImageSignature(ctx, sig, h, c.classic); err != nil {
		kind, why := classifyClassic(err, sum, c)
		return fail(kind, "%s (%s; logged at %s in log %s): %s", why, who,
			time.Unix(rb.Payload.IntegratedTime, 0).UTC().Format(time.RFC3339), rb.Payload.LogID, oneLine(err))
	}
	return fmt.Sprintf("subject %q from issuer %q", sum.SubjectAlternativeName, sum.Extensions.Issuer), nil
}

// classifyClassic names what failed in a classic keyless signature, from
// the stage cosign reports (its errors are text only).
func classifyClassic(err error, sum certificate.Summary, c *compiled) (error, string) {
	msg := err.Error()
	has := func(s string) bool { return strings.Contains(msg, s) }
	switch {
	case has("signature in bundle does not match"):
		return ErrTlogOrTimestamp, "the transparency log entry is for another signature: it does not bind this one"
	case has("comparing public key"):
		return ErrTlogOrTimestamp, "the transparency log entry is for another certificate: it does not bind this one"
	case has("matching bundle to payload"):
		return ErrTlogOrTimestamp, "the transparency log entry is for another payload: it does not bind this signature's payload"
	case has("failed to extract"):
		return ErrTlogOrTimestamp, "the transparency log entry's body is not a consistent Rekor entry (altered)"
	case has("rekor log public key not found"):
		return ErrTlogOrTimestamp, "the transparency log entry names a log that " + c.rootName + " does not list"
	case has("not valid at payload integrated time"):
		return ErrTlogOrTimestamp, "the log's key in " + c.rootName + " was not valid at the entry's logged time"
	case has("unable to verify SET"):
		return ErrTlogOrTimestamp, "the signed entry timestamp does not verify with the log key of " + c.rootName + " (signed by another key, or the entry was altered)"
	case has("error verifying bundle"):
		return ErrTlogOrTimestamp, "the Rekor bundle does not verify against " + c.rootName
	case has("RFC3161"):
		return ErrTlogOrTimestamp, "the attached RFC 3161 timestamp does not verify against " + c.rootName
	case has("checking expiry on certificate"):
		return ErrTlogOrTimestamp, "the certificate had expired (or was not yet valid) when the signature was logged"
	case has("leaf certificate verification failed"):
		return ErrWrongIdentity, "the certificate was not issued by a certificate authority of " + c.rootName + " (valid when the certificate was issued)"
	case has("does not include required embedded SCT"):
		return ErrTlogOrTimestamp, "the certificate has no embedded signed certificate timestamp (SCT), which " + c.rootName + " requires by listing CT logs"
	case has("SCT"):
		return ErrTlogOrTimestamp, "the certificate carries no signed certificate timestamp (SCT) that verifies with a CT log of " + c.rootName
	case has("none of the expected identities matched"):
		return ErrWrongIdentity, c.identityMismatch(sum)
	case has("invalid signature"), has("verification error"):
		return ErrBadBundle, "the signature does not verify over its payload with its own certificate: the signature was altered"
	}
	return ErrBadBundle, "the classic signature does not verify"
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
