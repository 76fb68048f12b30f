package oci

import (
	"errors"
	"fmt"
	"testing"
)

func TestSignCommand(t *testing.T) {
	for image, want := range map[string]string{
		"registry.example.com/agent:1.0.0":            "cosign sign --key <private key> registry.example.com/agent:1.0.0@sha256:ab",
		"registry.example.com/agent:1.0.0@sha256:old": "cosign sign --key <private key> registry.example.com/agent:1.0.0@sha256:ab",
		"localhost:5000/agent":                        "cosign sign --key <private key> localhost:5000/agent@sha256:ab",
	} {
		if got := SignCommand(image, "sha256:ab"); got != want {
			t.Errorf("SignCommand(%s) =\n %s\nwant\n %s", image, got, want)
		}
	}
}

func TestErrorReasonsAndUnwrap(t *testing.T) {
	cause := errors.New("boom")
	for kind, reason := range map[error]string{
		ErrUnsigned: ReasonUnsigned, ErrNoMatchingSignature: ReasonNoMatchingSignature,
		ErrWrongIdentity: ReasonWrongIdentity, ErrTlogOrTimestamp: ReasonTlogOrTimestamp, ErrOtherDigest: ReasonOtherDigest,
		ErrBadBundle: ReasonBadBundle, ErrThreshold: ReasonThreshold, ErrNoPolicy: ReasonNoPolicy,
		ErrNotFound: ReasonNotFound, ErrRegistry: ReasonRegistry, ErrBadReference: ReasonBadReference,
	} {
		err := fmt.Errorf("wrapped: %w", &Error{Kind: kind, Image: "r/a:1", Digest: "sha256:ab", Detail: "d", Next: "n", Cause: cause})
		if got := ReasonOf(err); got != reason {
			t.Errorf("ReasonOf(%v) = %s, want %s", kind, got, reason)
		}
		if !errors.Is(err, kind) || !errors.Is(err, cause) {
			t.Errorf("%v does not unwrap to its kind and cause", err)
		}
	}
	e := &Error{Kind: ErrUnsigned, Image: "r/a:1", Digest: "sha256:ab", Detail: "no tag", Next: "sign it", Cause: cause}
	if got, want := e.Error(), "r/a:1 (digest sha256:ab): image is not signed: no tag: boom; next: sign it"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if ReasonOf(nil) != "" || ReasonOf(cause) != ReasonRegistry {
		t.Error("ReasonOf of nil or a foreign error")
	}
}
