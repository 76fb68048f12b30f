package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Verified is an image whose signature checked out: the digest the tag
// resolved to, and which public key signed it.
type Verified struct {
	Ref    string // the reference that was resolved (repo:tag)
	Digest string // sha256:<hex>
	KeyID  string // names the public key that verified it
}

// ImageVerifier resolves an image reference to a digest and verifies its
// cosign signature against the configured public keys (one valid key
// suffices). installers/oci is the real one.
type ImageVerifier interface {
	Verify(ctx context.Context, image string) (Verified, error)
}

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

// Verify returns a fresh cached result for image or verifies it.
func (c *verifyCache) Verify(ctx context.Context, image string) (Verified, error) {
	if c.ttl <= 0 {
		return c.verify(ctx, image)
	}
	c.mu.Lock()
	e := c.entries[image]
	if e == nil {
		e = &verifyEntry{}
		c.entries[image] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && c.now().Sub(e.at) < c.ttl {
		return e.res, e.err
	}
	res, err := c.verify(ctx, image)
	if ctx.Err() != nil { // a cancelled pass proves nothing about the image
		return res, err
	}
	e.at, e.res, e.err = c.now(), res, err
	return res, err
}

func (c *verifyCache) verify(ctx context.Context, image string) (Verified, error) {
	res, err := c.v.Verify(ctx, image)
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
