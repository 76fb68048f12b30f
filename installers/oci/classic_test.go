package oci_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/installers/oci/ocitest"
)

func classicTrusted() ocitest.ClassicKeyless {
	return ocitest.ClassicKeyless{Subject: ghSubject, Issuer: ghIssuer}
}

// TestVerifyClassicKeyless checks cosign v2's keyless layout (".sig" tag
// with certificate and Rekor bundle annotations) against the test Sigstore
// stack's trusted root, offline.
func TestVerifyClassicKeyless(t *testing.T) {
	ss := testSigstore(t)
	keyA, keyB := testKeys(t)
	other, err := ocitest.GenerateSigstore() // a CA and a log the root does not list
	if err != nil {
		t.Fatal(err)
	}
	keyless := oci.Policy{TrustedRootJSON: ss.TrustedRootJSON, TrustedRootName: "test trusted_root.json",
		Keyless: []oci.Identity{{Issuer: ghIssuer, Subject: ghSubject}}}
	keylessRE := oci.Policy{TrustedRootJSON: ss.TrustedRootJSON,
		Keyless: []oci.Identity{{IssuerRegExp: `^https://token\.actions\.githubusercontent\.com$`, SubjectRegExp: `^https://github\.com/example/agent/`}}}
	tests := []struct {
		scenario string
		policy   oci.Policy
		// tweak spoils the trusted identity's classic keyless signature
		// of agent:2.0.0 (nil: signed as it is); setup, when set, signs
		// agent:2.0.0 some other way instead.
		tweak    func(*ocitest.ClassicKeyless)
		setup    func(t *testing.T, reg *ocitest.Registry) name.Digest
		wantKind error // nil: verified
		wantIn   []string
	}{
		{
			scenario: "a classic keyless signature from the trusted identity, logged with a valid SET, is accepted",
			policy:   keyless,
		},
		{
			scenario: "a classic keyless signature matching the policy's issuer and subject regexps is accepted",
			policy:   keylessRE,
		},
		{
			scenario: "a .sig tag holding a key signature by an untrusted key and a trusted keyless signature is accepted by a keys-or-keyless policy",
			policy: oci.Policy{KeysPEM: [][]byte{keyB.PublicPEM}, TrustedRootJSON: ss.TrustedRootJSON,
				Keyless: []oci.Identity{{Issuer: ghIssuer, Subject: ghSubject}}},
			setup: func(t *testing.T, reg *ocitest.Registry) name.Digest {
				d := ocitest.PushImage(t, reg.Ref("agent:2.0.0"))
				ocitest.Sign(t, d, keyA)
				ss.SignClassicKeyless(t, d, classicTrusted())
				return d
			},
		},
		{
			scenario: "a classic keyless signature by another identity is refused as a wrong subject",
			policy:   keyless,
			tweak: func(k *ocitest.ClassicKeyless) {
				k.Subject = "https://github.com/attacker/agent/.github/workflows/release.yml@refs/heads/main"
			},
			wantKind: oci.ErrWrongIdentity,
			wantIn:   []string{"subject is not trusted (its issuer is)", "attacker"},
		},
		{
			scenario: "a classic keyless signature from another OIDC issuer is refused as a wrong issuer",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.Issuer = "https://accounts.example.com" },
			wantKind: oci.ErrWrongIdentity,
			wantIn:   []string{"subject is trusted but its OIDC issuer is not", "accounts.example.com"},
		},
		{
			scenario: "a SET signed by another key under the trusted log's ID is refused",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.SETBy = other },
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"signed entry timestamp does not verify with the log key of test trusted_root.json"},
		},
		{
			scenario: "an entry in a transparency log the trusted root does not list is refused",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.Log = other },
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"names a log that test trusted_root.json does not list"},
		},
		{
			scenario: "a valid SET over a log entry for another payload and signature (swapped body) is refused",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.OtherBody = true },
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"transparency log entry is for another signature"},
		},
		{
			scenario: "a classic keyless signature replayed from an older image onto a new one is refused as for another digest",
			policy:   keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) name.Digest {
				old := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ss.SignClassicKeyless(t, old, classicTrusted())
				d := ocitest.PushImage(t, reg.Ref("agent:2.0.0"))
				ocitest.ReplaySignature(t, old, d)
				return d
			},
			wantKind: oci.ErrOtherDigest,
			wantIn:   []string{"its payload names sha256:", "is another image of", "replayed"},
		},
		{
			scenario: "a certificate that had expired at the entry's integrated time is refused",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.NotBefore = time.Now().Add(-2 * time.Hour) },
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"certificate had expired (or was not yet valid) when the signature was logged"},
		},
		{
			scenario: "a certificate from a CA the trusted root does not list is refused",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.CA = other },
			wantKind: oci.ErrWrongIdentity,
			wantIn:   []string{"not issued by a certificate authority of test trusted_root.json"},
		},
		{
			scenario: "a certificate without an embedded SCT is refused when the trusted root lists a CT log",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.NoSCT = true },
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"no embedded signed certificate timestamp (SCT), which test trusted_root.json requires by listing CT logs"},
		},
		{
			scenario: "a certificate without an SCT is accepted when the trusted root lists no CT log",
			policy: oci.Policy{TrustedRootJSON: ss.TrustedRootNoCTJSON,
				Keyless: []oci.Identity{{Issuer: ghIssuer, Subject: ghSubject}}},
			tweak: func(k *ocitest.ClassicKeyless) { k.NoSCT = true },
		},
		{
			scenario: "an SCT from a CT log the trusted root does not list is refused",
			policy:   keyless,
			tweak:    func(k *ocitest.ClassicKeyless) { k.SCTBy = other },
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"no signed certificate timestamp (SCT) that verifies with a CT log of test trusted_root.json"},
		},
		{
			scenario: "a classic keyless signature is refused by a policy that trusts keys only",
			policy:   oci.Policy{KeysPEM: [][]byte{keyA.PublicPEM}},
			wantKind: oci.ErrNoMatchingSignature,
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			reg := ocitest.StartRegistry(t)
			image := reg.Ref("agent:2.0.0")
			var d name.Digest
			if tt.setup != nil {
				d = tt.setup(t, reg)
			} else {
				d = ocitest.PushImage(t, image)
				k := classicTrusted()
				if tt.tweak != nil {
					tt.tweak(&k)
				}
				ss.SignClassicKeyless(t, d, k)
			}
			v, err := oci.New(oci.Trust{Policies: map[string]oci.Policy{"p": tt.policy}, Default: "p"},
				oci.Options{AllowLoopbackHTTP: true, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(context.Background(), image)
			if tt.wantKind == nil {
				if err != nil {
					t.Fatalf("Verify(%s): %v", image, err)
				}
				want := `keyless subject "` + ghSubject + `" from issuer "` + ghIssuer + `"`
				if got.Digest != d.DigestStr() || got.Ref != image+"@"+d.DigestStr() || got.Format != "classic" || got.Signer() != want {
					t.Errorf("verified %+v, want digest %s, format classic, signer %s", got, d.DigestStr(), want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify(%s) = %+v, want %v", image, got, tt.wantKind)
			}
			t.Logf("refusal: %v", err)
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("error is not %v: %v", tt.wantKind, err)
			}
			msg := err.Error()
			for _, s := range append([]string{image, d.DigestStr(), "next: "}, tt.wantIn...) {
				if !strings.Contains(msg, s) {
					t.Errorf("error lacks %q", s)
				}
			}
		})
	}
}
