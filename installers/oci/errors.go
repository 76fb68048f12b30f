package oci

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel kinds of verification failure. A *Error wraps exactly one of them
// (test with errors.Is) and, where there is one, the underlying cosign or
// registry error (test with errors.As, e.g. *cosign.ErrNoSignaturesFound).
var (
	// ErrUnsigned: the digest has no classic cosign signature and no
	// Sigstore bundle referrer.
	ErrUnsigned = errors.New("image is not signed")
	// ErrNoMatchingSignature: signatures exist but none verifies with a
	// configured key (wrong key), or a classic signature was copied from
	// another digest.
	ErrNoMatchingSignature = errors.New("no signature matches the configured keys")
	// ErrWrongIdentity: a keyless bundle or classic keyless signature
	// verifies, but its certificate names
	// a subject or OIDC issuer that the policy does not trust, or was not
	// issued by the trusted root's certificate authority.
	ErrWrongIdentity = errors.New("signer identity is not trusted")
	// ErrTlogOrTimestamp: a bundle's or classic keyless signature's
	// transparency log entry (inclusion proof, signed entry timestamp, entry
	// body), timestamp or certificate SCT is missing or invalid, or none of its verified times falls within the
	// signing certificate's validity (an expired certificate).
	ErrTlogOrTimestamp = errors.New("transparency log entry or timestamp invalid")
	// ErrOtherDigest: a Sigstore bundle or classic keyless signature
	// attached to this digest signs another digest (copied from another image, or signed for the wrong
	// manifest).
	ErrOtherDigest = errors.New("signature is for another digest")
	// ErrBadBundle: a bundle cannot be read, or its signature does not
	// verify over its own content with its own certificate (altered).
	ErrBadBundle = errors.New("invalid Sigstore bundle")
	// ErrThreshold: fewer distinct trusted keys signed the digest than the
	// policy's threshold requires.
	ErrThreshold = errors.New("not enough trusted signatures")
	// ErrNoPolicy: no trust policy applies to the image, or the one named
	// does not exist.
	ErrNoPolicy = errors.New("no trust policy")
	// ErrNotFound: the tag, digest or repository does not exist.
	ErrNotFound = errors.New("image not found")
	// ErrRegistry: the registry could not be reached, refused the
	// credentials, answered with something unusable, or would have needed
	// plain HTTP.
	ErrRegistry = errors.New("registry error")
	// ErrBadReference: the image string is not a valid reference.
	ErrBadReference = errors.New("invalid image reference")
)

// Reasons, in the CamelCase that Kubernetes Events and conditions use.
const (
	ReasonUnsigned            = "ImageUnsigned"
	ReasonNoMatchingSignature = "SignatureMismatch"
	ReasonWrongIdentity       = "SignerIdentityMismatch"
	ReasonTlogOrTimestamp     = "TransparencyLogOrTimestampInvalid"
	ReasonOtherDigest         = "SignatureForOtherDigest"
	ReasonBadBundle           = "InvalidSignatureBundle"
	ReasonThreshold           = "SignatureThresholdNotMet"
	ReasonNoPolicy            = "TrustPolicyMissing"
	ReasonNotFound            = "ImageNotFound"
	ReasonRegistry            = "RegistryError"
	ReasonBadReference        = "InvalidImageReference"
)

// Error is a refused or failed verification. Its message names the image,
// the digest (when one was resolved), the cause and the next step, so it can
// go into an Event or status entry as it is.
type Error struct {
	Kind   error  // one of the Err* sentinels
	Image  string // the reference as the caller gave it
	Digest string // "sha256:<hex>" when resolved, else ""
	Detail string // what was found, in one sentence
	Next   string // what the operator should do about it
	Cause  error  // the underlying error, if any; its text follows Detail
}

// Reason returns the Event/condition reason for e's kind.
func (e *Error) Reason() string {
	switch e.Kind {
	case ErrUnsigned:
		return ReasonUnsigned
	case ErrNoMatchingSignature:
		return ReasonNoMatchingSignature
	case ErrWrongIdentity:
		return ReasonWrongIdentity
	case ErrTlogOrTimestamp:
		return ReasonTlogOrTimestamp
	case ErrOtherDigest:
		return ReasonOtherDigest
	case ErrBadBundle:
		return ReasonBadBundle
	case ErrThreshold:
		return ReasonThreshold
	case ErrNoPolicy:
		return ReasonNoPolicy
	case ErrNotFound:
		return ReasonNotFound
	case ErrBadReference:
		return ReasonBadReference
	default:
		return ReasonRegistry
	}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Image)
	if e.Digest != "" {
		fmt.Fprintf(&b, " (digest %s)", e.Digest)
	}
	fmt.Fprintf(&b, ": %v", e.Kind)
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if e.Cause != nil && e.Cause.Error() != "" {
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	if e.Next != "" {
		fmt.Fprintf(&b, "; next: %s", e.Next)
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// ReasonOf returns the Event/condition reason of err, "" if err is nil, and
// ReasonRegistry for errors that did not come from this package.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason()
	}
	return ReasonRegistry
}

// SignCommand is the cosign command line that signs image@digest with a
// key so that this package accepts it. cosign v3 writes a Sigstore bundle
// referrer by default, which is verified; cosign v2 writes the classic
// "sha256-<hex>.sig" tag, also verified. --tlog-upload=false is left to
// the operator: with a trusted root configured the log entry is checked.
func SignCommand(image, digest string) string {
	return "cosign sign --key <private key> " + pinned(image, digest)
}

// SignKeylessCommand is the keyless equivalent: cosign asks the OIDC
// provider for an identity token; the identity must match the policy.
func SignKeylessCommand(image, digest string) string {
	return "cosign sign " + pinned(image, digest) + " (keyless, from the CI identity the policy names)"
}

// pinned returns image (tag kept, any digest dropped) followed by @digest.
func pinned(image, digest string) string {
	return stripDigest(image) + "@" + digest
}

// stripDigest drops an "@algo:hex" suffix from an image reference.
func stripDigest(image string) string {
	if i := strings.LastIndexByte(image, '@'); i >= 0 {
		return image[:i]
	}
	return image
}
