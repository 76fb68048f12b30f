package oci_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/installers/oci/ocitest"
)

// writeTrustDir writes the files a trust policy file names: two keys and
// the test trusted root.
func writeTrustDir(t *testing.T) string {
	t.Helper()
	keyA, keyB := testKeys(t)
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"a.pub": keyA.PublicPEM, "b.pub": keyB.PublicPEM, "trusted_root.json": testSigstore(t).TrustedRootJSON,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const goodTrust = `policies:
  release:
    keys: [a.pub, b.pub]
    threshold: 1
  ci:
    keyless:
      - issuer: https://token.actions.githubusercontent.com
        subjectRegExp: ^https://github\.com/example/agent/
    trustedRoot: trusted_root.json
channels:
  stable/cloud: ci
default: release
`

func TestLoadTrust(t *testing.T) {
	dir := writeTrustDir(t)
	path := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(path, []byte(goodTrust), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := oci.LoadTrust(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Policies) != 2 || len(tr.Policies["release"].KeysPEM) != 2 || tr.Channels["stable/cloud"] != "ci" || tr.Default != "release" ||
		len(tr.Policies["ci"].TrustedRootJSON) == 0 || tr.Policies["ci"].Keyless[0].SubjectRegExp == "" {
		t.Fatalf("loaded %+v", tr)
	}
	if _, err := oci.New(tr, oci.Options{}); err != nil {
		t.Fatalf("New: %v", err)
	}

	for _, tt := range []struct {
		scenario, yaml string
		want           []string // in the error, in order
	}{
		{"an unknown field is named with its line", "policies:\n  release:\n    keys: [a.pub]\n    treshold: 2\n",
			[]string{"trust.yaml", "line 4", "treshold"}},
		{"a keyless identity without a trusted root is refused, naming the policy's line", "policies:\n  release:\n    keys: [a.pub]\n  ci:\n    keyless:\n      - {issuer: https://i.example, subject: me@example.com}\n",
			[]string{"trust.yaml:4: policies.ci", "keyless identities need trustedRoot"}},
		{"an identity with both subject and subjectRegExp is refused", "policies:\n  ci:\n    keyless:\n      - {issuer: https://i.example, subject: a, subjectRegExp: b}\n    trustedRoot: trusted_root.json\n",
			[]string{"trust.yaml:2: policies.ci", "keyless[0]", "exactly one of subject and subjectRegExp"}},
		{"a missing key file is named", "policies:\n  release:\n    keys: [a.pub, gone.pub]\n",
			[]string{"trust.yaml:3: policies.release.keys[1]", "gone.pub", "PEM public key file"}},
		{"a threshold above the number of keys is refused", "policies:\n  release:\n    keys: [a.pub]\n    threshold: 2\n",
			[]string{"trust.yaml:2: policies.release", "threshold 2: want 1 to 1"}},
		{"a channel mapped to an undefined policy is refused", "policies:\n  release:\n    keys: [a.pub]\nchannels:\n  stable/cloud: nope\n",
			[]string{"trust.yaml:5: channels.stable/cloud", `policy "nope" is not defined`, "policies: release"}},
		{"a default naming an undefined policy is refused", "policies:\n  release:\n    keys: [a.pub]\ndefault: nope\n",
			[]string{"trust.yaml:4: default", `"nope" is not defined`}},
		{"a policy with neither keys nor identities is refused", "policies:\n  empty: {}\n",
			[]string{"trust.yaml:2: policies.empty", "no keys and no keyless identities"}},
		{"a trusted root that is not one is refused", "policies:\n  ci:\n    keyless: [{issuer: https://i.example, subject: me@example.com}]\n    trustedRoot: a.pub\n",
			[]string{"policies.ci", "not a Sigstore trusted_root.json"}},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := oci.ParseTrust([]byte(tt.yaml), filepath.Join(dir, "trust.yaml"), os.ReadFile)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error lacks %q (in order): %s", w, msg)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestSigningDocPolicyParses keeps the trust policy file of the signing
// guide valid: its YAML block is parsed with the files it names.
func TestSigningDocPolicyParses(t *testing.T) {
	doc, err := os.ReadFile("../../examples/kubernetes/updater/SIGNING.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```yaml\n# trust-policy.yaml")
	block, _, ok2 := strings.Cut("#"+block, "```")
	if !ok || !ok2 {
		t.Fatal("SIGNING.md has no ```yaml block starting with # trust-policy.yaml")
	}
	keyA, keyB := testKeys(t)
	files := map[string][]byte{"release-2025.pub": keyA.PublicPEM, "release-2026.pub": keyB.PublicPEM, "trusted_root.json": testSigstore(t).TrustedRootJSON}
	tr, err := oci.ParseTrust([]byte(block), "/etc/upkeep/trust/trust-policy.yaml", func(p string) ([]byte, error) {
		if b, ok := files[filepath.Base(p)]; ok && filepath.Dir(p) == "/etc/upkeep/trust" {
			return b, nil
		}
		return nil, os.ErrNotExist
	})
	if err != nil {
		t.Fatalf("the guide's policy file: %v", err)
	}
	if _, err := oci.New(tr, oci.Options{}); err != nil || tr.Channels["stable/cloud"] != "teleport-ci" || tr.Default != "release" {
		t.Fatalf("the guide's policy file: %+v, %v", tr, err)
	}
}

func TestVerifyInPicksThePolicy(t *testing.T) {
	keyA, keyB := testKeys(t)
	reg := ocitest.StartRegistry(t, ocitest.WithReferrersAPI())
	d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
	ocitest.AttachBundle(t, d, keyB)
	v, err := oci.New(oci.Trust{
		Policies: map[string]oci.Policy{"a": {KeysPEM: [][]byte{keyA.PublicPEM}}, "b": {KeysPEM: [][]byte{keyB.PublicPEM}}},
		Channels: map[string]string{"edge": "b"},
		Default:  "a",
	}, oci.Options{AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	image := reg.Ref("agent:1.0.0")
	for _, tt := range []struct {
		scenario string
		scope    oci.Scope
		wantKind error
	}{
		{"the default policy (key A) refuses B's bundle", oci.Scope{}, oci.ErrNoMatchingSignature},
		{"the channel's policy (key B) accepts it", oci.Scope{Channel: "edge"}, nil},
		{"a channel without a mapping falls back to the default", oci.Scope{Channel: "stable"}, oci.ErrNoMatchingSignature},
		{"the workload's policy wins over its channel's", oci.Scope{Policy: "a", Channel: "edge"}, oci.ErrNoMatchingSignature},
		{"the workload's policy b accepts it", oci.Scope{Policy: "b"}, nil},
		{"an undefined policy is refused, naming the defined ones", oci.Scope{Policy: "nope"}, oci.ErrNoPolicy},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			got, err := v.VerifyIn(context.Background(), image, tt.scope)
			if tt.wantKind == nil {
				if err != nil || got.Digest != d.DigestStr() || got.Policy != "b" {
					t.Fatalf("VerifyIn(%+v) = %+v, %v", tt.scope, got, err)
				}
				return
			}
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("VerifyIn(%+v) = %v, want %v", tt.scope, err, tt.wantKind)
			}
			if tt.wantKind == oci.ErrNoPolicy && (!strings.Contains(err.Error(), "policies: a, b") || !strings.Contains(err.Error(), d.DigestStr()) || oci.ReasonOf(err) != oci.ReasonNoPolicy) {
				t.Errorf("message: %v", err)
			}
		})
	}
	v2, err := oci.New(oci.Trust{Policies: map[string]oci.Policy{"a": {KeysPEM: [][]byte{keyA.PublicPEM}}}}, oci.Options{AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(context.Background(), image); !errors.Is(err, oci.ErrNoPolicy) || !strings.Contains(err.Error(), "no trust policy applies") {
		t.Errorf("no default policy: %v", err)
	}
}

// countingRegistry is a registry that counts the requests it serves.
func countingRegistry(t testing.TB) (host string, n *atomic.Int64) {
	n = new(atomic.Int64)
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), n
}

func TestVerifiedDigestsAreCachedAndRefusalsAreNot(t *testing.T) {
	ss := testSigstore(t)
	host, reqs := countingRegistry(t)
	signed := ocitest.PushImage(t, host+"/agent:1.0.0")
	ss.SignKeyless(t, signed, trusted())
	unsigned := ocitest.PushImage(t, host+"/agent:2.0.0")
	pol := oci.Policy{TrustedRootJSON: ss.TrustedRootJSON, Keyless: []oci.Identity{{Issuer: ghIssuer, Subject: ghSubject}}}
	v, err := oci.New(oci.Trust{Policies: map[string]oci.Policy{"ci": pol}, Default: "ci"}, oci.Options{AllowLoopbackHTTP: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	count := func(image string) (int64, error) {
		before := reqs.Load()
		_, err := v.Verify(context.Background(), image)
		return reqs.Load() - before, err
	}
	cold, err := count(host + "/agent:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	warm, err := count(host + "/agent:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("requests: cold %d, warm %d", cold, warm)
	// Warm: the ping and the tag's manifest only; cold also lists and reads the bundle.
	if warm >= cold || warm > 2 {
		t.Errorf("requests: cold %d, warm %d; want the warm pass to resolve the tag only", cold, warm)
	}
	first, err1 := count(host + "/agent:2.0.0")
	ss.SignKeyless(t, unsigned, trusted())
	_, err2 := count(host + "/agent:2.0.0")
	if !errors.Is(err1, oci.ErrUnsigned) || err2 != nil || first == 0 {
		t.Errorf("a refusal was remembered: before signing %v, after %v", err1, err2)
	}
}

// BenchmarkVerifyBundle verifies one image per format, cold (no cache:
// every pass lists referrers, reads the bundle and checks it) and cached
// (a verified digest: the tag is resolved, nothing else).
func BenchmarkVerifyBundle(b *testing.B) {
	keyA, _ := testKeys(b)
	ss := testSigstore(b)
	reg := ocitest.StartRegistry(b, ocitest.WithReferrersAPI())
	keyless := ocitest.PushImage(b, reg.Ref("agent:keyless"))
	ss.SignKeyless(b, keyless, trusted())
	keyBundle := ocitest.PushImage(b, reg.Ref("agent:key"))
	ocitest.AttachBundle(b, keyBundle, keyA)
	classic := ocitest.PushImage(b, reg.Ref("agent:classic"))
	ocitest.Sign(b, classic, keyA)
	classicKeyless := ocitest.PushImage(b, reg.Ref("agent:classic-keyless"))
	ss.SignClassicKeyless(b, classicKeyless, classicTrusted())
	policies := map[string]oci.Policy{
		"keyless": {TrustedRootJSON: ss.TrustedRootJSON, Keyless: []oci.Identity{{Issuer: ghIssuer, Subject: ghSubject}}},
		"key":     {KeysPEM: [][]byte{keyA.PublicPEM}},
	}
	for _, bc := range []struct{ name, tag, policy string }{
		{"keyless bundle", "keyless", "keyless"},
		{"key bundle", "key", "key"},
		{"classic sig", "classic", "key"},
		{"classic keyless sig", "classic-keyless", "keyless"},
	} {
		for _, cache := range []struct {
			name string
			size int
		}{{"cold", -1}, {"cached", 0}} {
			b.Run(bc.name+"/"+cache.name, func(b *testing.B) {
				v, err := oci.New(oci.Trust{Policies: policies}, oci.Options{AllowLoopbackHTTP: true, CacheSize: cache.size})
				if err != nil {
					b.Fatal(err)
				}
				scope := oci.Scope{Policy: bc.policy}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.VerifyIn(context.Background(), reg.Ref("agent:"+bc.tag), scope); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
