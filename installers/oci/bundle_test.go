package oci_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/installers/oci/ocitest"
)

// The keyless signer the policies below trust, as GitHub Actions' OIDC
// provider names a release workflow.
const (
	ghIssuer  = "https://token.actions.githubusercontent.com"
	ghSubject = "https://github.com/example/agent/.github/workflows/release.yml@refs/tags/v1.0.0"
)

// sharedSigstore is one test Sigstore stack (CA, log, timestamp authority)
// per test binary.
var sharedSigstore = sync.OnceValues(ocitest.GenerateSigstore)

func testSigstore(t testing.TB) *ocitest.Sigstore {
	t.Helper()
	s, err := sharedSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func trusted() ocitest.Keyless { return ocitest.Keyless{Subject: ghSubject, Issuer: ghIssuer} }

// tamper rewrites the in-toto statement inside a bundle's DSSE envelope,
// keeping its subject, signature, log entry and timestamp.
func tamper(t *testing.T, bundle []byte) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	env := b["dsseEnvelope"].(map[string]any)
	payload, err := base64.StdEncoding.DecodeString(env["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	st["predicate"] = map[string]any{"note": "altered after signing"}
	payload, _ = json.Marshal(st)
	env["payload"] = base64.StdEncoding.EncodeToString(payload)
	out, _ := json.Marshal(b)
	return out
}

// absentDigest is a digest no image in the test registries has.
func absentDigest(repo name.Repository) name.Digest {
	sum := sha256.Sum256([]byte("an image that was never pushed"))
	return repo.Digest(fmt.Sprintf("sha256:%x", sum))
}

func TestVerifyBundles(t *testing.T) {
	keyA, keyB := testKeys(t)
	ss := testSigstore(t)
	rootJSON := ss.TrustedRootJSON
	keyless := oci.Policy{TrustedRootJSON: rootJSON, TrustedRootName: "test trusted_root.json",
		Keyless: []oci.Identity{{Issuer: ghIssuer, Subject: ghSubject}}}
	keylessRE := oci.Policy{TrustedRootJSON: rootJSON,
		Keyless: []oci.Identity{{Issuer: ghIssuer, SubjectRegExp: `^https://github\.com/example/agent/\.github/workflows/release\.yml@refs/tags/v`}}}
	keysA := oci.Policy{KeysPEM: [][]byte{keyA.PublicPEM}}
	twoOfAB := oci.Policy{KeysPEM: [][]byte{keyA.PublicPEM, keyB.PublicPEM}, Threshold: 2}

	type setup func(t *testing.T, reg *ocitest.Registry) (image string, digest name.Digest)
	tests := []struct {
		scenario  string
		referrers bool
		policy    oci.Policy
		setup     setup
		wantKind  error // nil: verified
		wantIn    []string
		wantWho   string // Signer() of the result
		wantFmt   string
	}{
		{
			scenario: "a keyless bundle from the trusted workflow and issuer is accepted (referrers API)", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ss.SignKeyless(t, d, trusted())
				return reg.Ref("agent:1.0.0"), d
			},
			wantWho: `keyless subject "` + ghSubject + `" from issuer "` + ghIssuer + `"`, wantFmt: "bundle",
		},
		{
			scenario: "a keyless bundle is accepted through the referrers fallback tag on an OCI 1.0 registry",
			policy:   keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ss.SignKeyless(t, d, trusted())
				return reg.Ref("agent:1.0.0"), d
			},
			wantFmt: "bundle",
		},
		{
			scenario: "a keyless bundle whose subject matches the policy's subjectRegExp is accepted", referrers: true,
			policy: keylessRE,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ss.SignKeyless(t, d, trusted())
				return reg.Ref("agent:1.0.0"), d
			},
			wantFmt: "bundle",
		},
		{
			scenario: "a bundle signed with key A is accepted by a policy of key A", referrers: true,
			policy: keysA,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundle(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			wantWho: fingerprint(t, keyA.PublicPEM), wantFmt: "bundle",
		},
		{
			scenario: "a message-signature bundle by key A over the manifest is accepted by a policy of key A", referrers: true,
			policy: keysA,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundleJSON(t, d, ocitest.KeyMessageBundle(t, d, keyA))
				return reg.Ref("agent:1.0.0"), d
			},
			wantWho: fingerprint(t, keyA.PublicPEM), wantFmt: "bundle",
		},
		{
			scenario: "a message-signature bundle over another image's manifest is refused as for another digest", referrers: true,
			policy: keysA,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				old := ocitest.PushImage(t, reg.Ref("agent:0.9.0"))
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundleJSON(t, d, ocitest.KeyMessageBundle(t, old, keyA))
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrOtherDigest,
			wantIn:   []string{"copied (replayed) from it"},
		},
		{
			scenario: "a classic .sig signature by key A is accepted by a policy of key A",
			policy:   keysA,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			wantWho: fingerprint(t, keyA.PublicPEM), wantFmt: "classic",
		},
		{
			scenario: "two of two keys: a classic signature by A and a bundle by B together are accepted", referrers: true,
			policy: twoOfAB,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyA)
				ocitest.AttachBundle(t, d, keyB)
				return reg.Ref("agent:1.0.0"), d
			},
			wantWho: fingerprint(t, keyA.PublicPEM) + "," + fingerprint(t, keyB.PublicPEM), wantFmt: "bundle",
		},
		{
			scenario: "two of two keys: A's signatures alone, in both formats, are refused as below the threshold", referrers: true,
			policy: twoOfAB,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyA)
				ocitest.AttachBundle(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrThreshold,
			wantIn:   []string{"1 distinct trusted key(s) signed it", "needs 2", "have 1 more"},
		},
		{
			scenario: "a bundle signed with another key is refused as a wrong key", referrers: true,
			policy: keysA,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundle(t, d, keyB)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrNoMatchingSignature,
			wantIn:   []string{"no configured key verifies it", "add the signer's public key"},
		},
		{
			scenario: "a keyless bundle from another workflow of the trusted issuer is refused as a wrong identity", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ss.SignKeyless(t, d, ocitest.Keyless{Subject: "https://github.com/attacker/fork/.github/workflows/release.yml@refs/heads/main", Issuer: ghIssuer})
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrWrongIdentity,
			wantIn:   []string{"the certificate's subject is not trusted (its issuer is)", "attacker/fork", "add the signer's identity"},
		},
		{
			scenario: "a keyless bundle with the trusted subject from another OIDC issuer is refused as a wrong identity", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ss.SignKeyless(t, d, ocitest.Keyless{Subject: ghSubject, Issuer: "https://issuer.attacker.example"})
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrWrongIdentity,
			wantIn:   []string{"the certificate's subject is trusted but its OIDC issuer is not", "issuer.attacker.example"},
		},
		{
			scenario: "a keyless bundle altered after signing is refused as altered", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundleJSON(t, d, tamper(t, ss.KeylessBundle(t, d, trusted())))
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrBadBundle,
			wantIn:   []string{"the bundle was altered"},
		},
		{
			scenario: "a valid keyless bundle for a digest the repository does not hold is refused as for another digest", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundleJSON(t, d, ss.KeylessBundle(t, absentDigest(d.Repository), trusted()))
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrOtherDigest,
			wantIn:   []string{"signs " + absentDigest(name.MustParseReference("x/y:1").Context()).DigestStr(), "the repository holds no image with that digest"},
		},
		{
			scenario: "a bundle replayed from an older image of the repository is refused as copied from it", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				old := ocitest.PushImage(t, reg.Ref("agent:0.9.0"))
				ss.SignKeyless(t, old, trusted())
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				for _, b := range ocitest.Bundles(t, old) {
					ocitest.AttachBundleJSON(t, d, b)
				}
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrOtherDigest,
			wantIn:   []string{"is another image of", "copied (replayed) from it"},
		},
		{
			scenario: "a multi-platform index whose bundle signs one platform manifest is refused, naming the index digest to sign", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushIndex(t, reg.Ref("agent:2.0.0"))
				child := platformManifest(t, d)
				ocitest.AttachBundleJSON(t, d, ss.KeylessBundle(t, child, trusted()))
				return reg.Ref("agent:2.0.0"), d
			},
			wantKind: oci.ErrOtherDigest,
			wantIn:   []string{"a platform manifest of this index", "sign the index digest"},
		},
		{
			scenario: "a keyless bundle whose certificate had expired when it was logged and timestamped is refused", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				k := trusted()
				k.NotBefore = time.Now().Add(-time.Hour) // valid for 10 minutes, 50 minutes ago
				ss.SignKeyless(t, d, k)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"the certificate had expired", "when the signature was logged", "valid 20"},
		},
		{
			scenario: "a keyless bundle without a signed timestamp is accepted on the log's signed entry timestamp", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				k := trusted()
				k.NoTimestamp, k.SET = true, true
				ss.SignKeyless(t, d, k)
				return reg.Ref("agent:1.0.0"), d
			},
			wantFmt: "bundle",
		},
		{
			scenario: "a keyless bundle whose certificate expired since, logged with a signed entry timestamp while it was valid, is accepted", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				k := trusted()
				k.NotBefore = time.Now().Add(-time.Hour)
				k.LogTime, k.SET, k.NoTimestamp = k.NotBefore.Add(2*time.Minute), true, true
				ss.SignKeyless(t, d, k)
				return reg.Ref("agent:1.0.0"), d
			},
			wantFmt: "bundle",
		},
		{
			scenario: "a keyless bundle whose certificate had expired when it was logged, with a signed entry timestamp, is refused", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				k := trusted()
				k.NotBefore = time.Now().Add(-time.Hour)
				k.SET, k.NoTimestamp = true, true
				ss.SignKeyless(t, d, k)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"the certificate had expired"},
		},
		{
			scenario: "a keyless bundle without a log entry or a timestamp is refused", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				k := trusted()
				k.NoTlog, k.NoTimestamp = true, true
				ss.SignKeyless(t, d, k)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"transparency log", "not enough verified log entries"},
		},
		{
			scenario: "a key bundle without a log entry is refused by a keys policy that has a trusted root", referrers: true,
			policy: oci.Policy{KeysPEM: [][]byte{keyA.PublicPEM}, TrustedRootJSON: rootJSON, TrustedRootName: "test trusted_root.json"},
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundle(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"test trusted_root.json requires a transparency log entry and a verified timestamp"},
		},
		{
			scenario: "a keyless bundle whose certificate has no SCT is refused when the trusted root lists a CT log", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				k := trusted()
				k.NoSCT = true
				ss.SignKeyless(t, d, k)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrTlogOrTimestamp,
			wantIn:   []string{"no signed certificate timestamp (SCT) that verifies with a CT log of test trusted_root.json"},
		},
		{
			scenario: "a keyless bundle whose certificate has no SCT is accepted when the trusted root lists no CT log", referrers: true,
			policy: oci.Policy{TrustedRootJSON: ss.TrustedRootNoCTJSON, Keyless: []oci.Identity{{Issuer: ghIssuer, Subject: ghSubject}}},
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				k := trusted()
				k.NoSCT = true
				ss.SignKeyless(t, d, k)
				return reg.Ref("agent:1.0.0"), d
			},
			wantFmt: "bundle",
		},
		{
			scenario: "a keyless bundle is refused by a policy of keys only", referrers: true,
			policy: keysA,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ss.SignKeyless(t, d, trusted())
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrNoMatchingSignature,
			wantIn:   []string{"is keyless", "the policy trusts keys only"},
		},
		{
			scenario: "a classic key signature is refused under a keyless policy, saying it has no certificate", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrNoMatchingSignature,
			wantIn:   []string{"signature tag", "is signed with a key (no certificate)", "keyless subject"},
		},
		{
			scenario: "an unsigned image is refused under a keyless policy with the keyless signing command", referrers: true,
			policy: keyless,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				return reg.Ref("agent:1.0.0"), d
			},
			wantKind: oci.ErrUnsigned,
			wantIn:   []string{"no Sigstore bundle referrer", "cosign sign " + "127.0.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			var opts []ocitest.RegistryOption
			if tt.referrers {
				opts = append(opts, ocitest.WithReferrersAPI())
			}
			reg := ocitest.StartRegistry(t, opts...)
			image, digest := tt.setup(t, reg)
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
				if got.Digest != digest.DigestStr() || got.Ref != image+"@"+digest.DigestStr() {
					t.Errorf("verified %s (%s), want digest %s", got.Ref, got.Digest, digest.DigestStr())
				}
				if tt.wantWho != "" && got.Signer() != tt.wantWho {
					t.Errorf("Signer() = %s, want %s", got.Signer(), tt.wantWho)
				}
				if got.Format != tt.wantFmt || got.Policy != "p" {
					t.Errorf("Format %q Policy %q, want %q and p", got.Format, got.Policy, tt.wantFmt)
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
			for _, s := range append([]string{image, digest.DigestStr(), "next: "}, tt.wantIn...) {
				if !strings.Contains(msg, s) {
					t.Errorf("error lacks %q", s)
				}
			}
			if oci.ReasonOf(err) == oci.ReasonRegistry {
				t.Errorf("ReasonOf = %s", oci.ReasonOf(err))
			}
		})
	}
}

// platformManifest returns the digest of the first manifest of index d.
func platformManifest(t *testing.T, d name.Digest) name.Digest {
	t.Helper()
	m := ocitest.IndexManifests(t, d)
	if len(m) == 0 {
		t.Fatal("index has no manifests")
	}
	return m[0]
}
