package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Verified is an image whose signature checked out: the digest the tag
// resolved to, and who signed it.
type Verified struct {
	Ref    string // the reference that was resolved (repo:tag)
	Digest string // sha256:<hex>
	// KeyID names the signer: the public key's fingerprint (several,
	// comma-separated, for an N-of-M policy), or "keyless subject S from
	// issuer I" for a keyless signature.
	KeyID string
}

// ImageVerifier resolves an image reference to a digest and verifies its
// signatures against the configured trust (installers/oci is the real
// one). One that also implements ScopedVerifier is asked with each
// workload's TrustScope.
type ImageVerifier interface {
	Verify(ctx context.Context, image string) (Verified, error)
}

// TrustScope selects a trust policy: Policy (a workload's annotation) if
// set, else Channel's policy, else the default.
type TrustScope struct {
	Policy  string
	Channel string
}

// ScopedVerifier verifies against the policy a TrustScope selects.
type ScopedVerifier interface {
	ImageVerifier
	VerifyScoped(ctx context.Context, image string, scope TrustScope) (Verified, error)
}

// ReasonNoTrustPolicies: a workload names a trust policy, but the
// verifier has none to choose from.
const ReasonNoTrustPolicies = "TrustPolicyMissing"

// Reasons a verification failed, as Events and the status annotation name
// them. An ImageVerifier's error may carry its own reason (ReasonError).
const (
	ReasonVerificationFailed = "VerificationFailed"
	ReasonBadDigest          = "BadDigest"
)

// ReasonError is an error that names its cause as a CamelCase reason, such
// as ImageUnsigned or NoMatchingSignature.
type ReasonError interface {
	error
	Reason() string
}

// VerifyReason is the reason to record for a verification error.
func VerifyReason(err error) string {
	var re ReasonError
	if errors.As(err, &re) && re.Reason() != "" {
		return re.Reason()
	}
	return ReasonVerificationFailed
}

// verifyCache keeps verification results for a short time, so that a
// channel change that moves hundreds of workloads to the same image
// verifies it once, not once per workload. Failures are kept too: a
// registry is not hammered by every workload refusing the same image.
// Only the digest that was verified is ever written, so a cached success
// can at worst deploy a correctly signed digest that the tag pointed to up
// to ttl ago.
type verifyCache struct {
	v   ImageVerifier
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*verifyEntry
}

type verifyEntry struct {
	mu  sync.Mutex // held while verifying, so concurrent callers wait for one result
	at  time.Time
	res Verified
	err error
}

func newVerifyCache(v ImageVerifier, ttl time.Duration, now func() time.Time) *verifyCache {
	return &verifyCache{v: v, ttl: ttl, now: now, entries: map[string]*verifyEntry{}}
}

// Verify verifies image under the default policy.
func (c *verifyCache) Verify(ctx context.Context, image string) (Verified, error) {
	return c.VerifyFor(ctx, image, TrustScope{})
}

// VerifyFor returns a fresh cached result for image under the policy scope
// selects, or verifies it. Results are kept per image and scope: the same
// image may satisfy one workload's policy and not another's.
func (c *verifyCache) VerifyFor(ctx context.Context, image string, scope TrustScope) (Verified, error) {
	if c.ttl <= 0 {
		return c.verify(ctx, image, scope)
	}
	key := scope.Policy + "\x00" + scope.Channel + "\x00" + image
	c.mu.Lock()
	e := c.entries[key]
	if e == nil {
		e = &verifyEntry{}
		c.entries[key] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && c.now().Sub(e.at) < c.ttl {
		return e.res, e.err
	}
	res, err := c.verify(ctx, image, scope)
	if ctx.Err() != nil { // a cancelled pass proves nothing about the image
		return res, err
	}
	e.at, e.res, e.err = c.now(), res, err
	return res, err
}

func (c *verifyCache) verify(ctx context.Context, image string, scope TrustScope) (Verified, error) {
	var res Verified
	var err error
	switch sv, ok := c.v.(ScopedVerifier); {
	case ok:
		res, err = sv.VerifyScoped(ctx, image, scope)
	case scope.Policy != "":
		// Verifying under another policy than the one named would be a
		// silent downgrade or upgrade: refuse instead.
		err = reasonErr{ReasonNoTrustPolicies, fmt.Errorf("%s: the workload names trust policy %q (annotation %s), but the updater has no trust policies (start it with --trust-policy FILE), so the image is not deployed; next: define the policy or remove the annotation", image, scope.Policy, AnnotationTrustPolicy)}
	default:
		res, err = c.v.Verify(ctx, image)
	}
	if err != nil {
		return Verified{}, err
	}
	if err := checkDigest(res.Digest); err != nil {
		return Verified{}, reasonErr{ReasonBadDigest, fmt.Errorf("the verifier returned %w", err)}
	}
	return res, nil
}

type reasonErr struct {
	reason string
	err    error
}

func (e reasonErr) Error() string  { return e.err.Error() }
func (e reasonErr) Unwrap() error  { return e.err }
func (e reasonErr) Reason() string { return e.reason }
