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
	// ErrUnsigned: the digest has no classic cosign signature and no bundle.
	ErrUnsigned = errors.New("image is not signed")
	// ErrNoMatchingSignature: signatures exist but none verifies with a
	// configured key for this digest (wrong key, or a signature copied from
	// another digest).
	ErrNoMatchingSignature = errors.New("no signature matches the configured keys")
	// ErrBundleOnly: the digest is signed only in cosign's newer Sigstore
	// bundle format (an OCI referrer), which this verifier does not read.
	ErrBundleOnly = errors.New("image is signed only in the Sigstore bundle format")
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
	ReasonBundleOnly          = "SignatureBundleOnly"
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
	case ErrBundleOnly:
		return ReasonBundleOnly
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
	if e.Cause != nil {
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

// SignCommand is the cosign command line that signs image@digest in the
// classic format this package verifies: a "sha256-<hex>.sig" tag, key-based,
// no transparency log. cosign v3 signs in the bundle format by default; the
// three flags turn that off (cosign v2 accepts them too).
func SignCommand(image, digest string) string {
	return "cosign sign --key <private key> --new-bundle-format=false --use-signing-config=false --tlog-upload=false " +
		pinned(image, digest)
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
