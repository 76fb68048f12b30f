package oci_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"

	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/installers/oci/ocitest"
)

// fingerprint computes a key ID independently of the package: SHA-256 of
// the DER inside the PEM block.
func fingerprint(t testing.TB, pubPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(pubPEM)
	if b == nil {
		t.Fatal("no PEM block")
	}
	sum := sha256.Sum256(b.Bytes)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// sharedKeys generates two key pairs once per test binary: cosign encrypts
// private keys with scrypt, about half a second per pair.
var sharedKeys = sync.OnceValues(func() ([2]*ocitest.KeyPair, error) {
	var ks [2]*ocitest.KeyPair
	for i := range ks {
		k, err := ocitest.GenerateKeyPair()
		if err != nil {
			return ks, err
		}
		ks[i] = k
	}
	return ks, nil
})

// testKeys returns the shared key pairs A and B.
func testKeys(t testing.TB) (a, b *ocitest.KeyPair) {
	t.Helper()
	ks, err := sharedKeys()
	if err != nil {
		t.Fatal(err)
	}
	return ks[0], ks[1]
}

func newVerifier(t testing.TB, keys ...*ocitest.KeyPair) *oci.Verifier {
	t.Helper()
	var pems [][]byte
	for _, k := range keys {
		pems = append(pems, k.PublicPEM)
	}
	v, err := oci.NewVerifier(pems, oci.Options{AllowLoopbackHTTP: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	keyA, keyB := testKeys(t)

	type setup func(t *testing.T, reg *ocitest.Registry) (image string, digest name.Digest)
	tests := []struct {
		scenario  string
		referrers bool // registry serves the OCI 1.1 referrers API
		setup     setup
		keys      []*ocitest.KeyPair
		wantKind  error  // nil: verified
		wantKey   string // fingerprint expected in Verified.KeyID
		wantIn    []string
	}{
		{
			scenario: "an image signed with key A verifies with key A and is pinned to its digest",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:    []*ocitest.KeyPair{keyA},
			wantKey: "A",
		},
		{
			scenario: "an image signed with key A verifies with keys [B, A] and names A as the matching key",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:    []*ocitest.KeyPair{keyB, keyA},
			wantKey: "A",
		},
		{
			scenario: "an image signed by B and then by A verifies with A alone",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyB)
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:    []*ocitest.KeyPair{keyA},
			wantKey: "A",
		},
		{
			scenario: "a multi-platform index signed at its index digest verifies and pins the index digest",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushIndex(t, reg.Ref("agent:2.0.0"))
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:2.0.0"), d
			},
			keys:    []*ocitest.KeyPair{keyA},
			wantKey: "A",
		},
		{
			scenario: "an image given as tag@digest verifies that digest and keeps the tag",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:1.0.0@" + d.DigestStr()), d
			},
			keys:    []*ocitest.KeyPair{keyA},
			wantKey: "A",
		},
		{
			scenario: "an unsigned image is refused as unsigned, with the command that signs it",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				return reg.Ref("agent:1.0.0"), d
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrUnsigned,
			wantIn:   []string{"not signed", "no signature tag", "next: sign the digest", "cosign sign --key"},
		},
		{
			scenario: "an image signed with another key is refused as a mismatch",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, d, keyB)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrNoMatchingSignature,
			wantIn:   []string{"no signature matches", "invalid signature", "add the signer's public key"},
		},
		{
			scenario: "a signature replayed from another digest is refused as a mismatch",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				signed := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, signed, keyA)
				evil := ocitest.PushImage(t, reg.Ref("agent:1.0.1"))
				ocitest.ReplaySignature(t, signed, evil)
				return reg.Ref("agent:1.0.1"), evil
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrNoMatchingSignature,
			wantIn:   []string{"invalid or missing digest in claim", "copied from another digest never matches"},
		},
		{
			scenario: "a tag moved after signing to an unsigned image is refused",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				signed := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.Sign(t, signed, keyA)
				moved := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				return reg.Ref("agent:1.0.0"), moved
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrUnsigned,
		},
		{
			scenario: "an image signed only in the bundle format with key A verifies with key A (referrers fallback tag)",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundle(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:    []*ocitest.KeyPair{keyA},
			wantKey: "A",
		},
		{
			scenario:  "an image signed only in the bundle format with key A verifies with key A (referrers API)",
			referrers: true,
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundle(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:    []*ocitest.KeyPair{keyA},
			wantKey: "A",
		},
		{
			scenario: "an image signed only in the bundle format with key B is refused with key A as a mismatch",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundle(t, d, keyB)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrNoMatchingSignature,
			wantIn:   []string{"bundle referrer sha256:", "no configured key verifies it"},
		},
		{
			scenario: "an image signed in both formats verifies through its classic signature",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				ocitest.AttachBundle(t, d, keyA)
				ocitest.Sign(t, d, keyA)
				return reg.Ref("agent:1.0.0"), d
			},
			keys:    []*ocitest.KeyPair{keyA},
			wantKey: "A",
		},
		{
			scenario: "a missing tag is not found",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				return reg.Ref("agent:9.9.9"), name.Digest{}
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrNotFound,
			wantIn:   []string{"tag 9.9.9 not found", "next: check the image name"},
		},
		{
			scenario: "a missing repository is not found",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				return reg.Ref("nothing:1.0.0"), name.Digest{}
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrNotFound,
		},
		{
			scenario: "a digest that is not in the repository is not found, even if signed elsewhere",
			setup: func(t *testing.T, reg *ocitest.Registry) (string, name.Digest) {
				d := ocitest.PushImage(t, reg.Ref("other:1.0.0"))
				ocitest.Sign(t, d, keyA)
				ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
				return reg.Ref("agent@" + d.DigestStr()), name.Digest{}
			},
			keys:     []*ocitest.KeyPair{keyA},
			wantKind: oci.ErrNotFound,
			wantIn:   []string{"digest sha256:"},
		},
	}
	ids := map[string]string{"A": fingerprint(t, keyA.PublicPEM), "B": fingerprint(t, keyB.PublicPEM)}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			var opts []ocitest.RegistryOption
			if tt.referrers {
				opts = append(opts, ocitest.WithReferrersAPI())
			}
			reg := ocitest.StartRegistry(t, opts...)
			image, digest := tt.setup(t, reg)
			v := newVerifier(t, tt.keys...)

			got, err := v.Verify(context.Background(), image)
			if tt.wantKind == nil {
				if err != nil {
					t.Fatalf("Verify(%s): %v", image, err)
				}
				if got.Digest != digest.DigestStr() {
					t.Errorf("Digest = %s, want %s", got.Digest, digest.DigestStr())
				}
				wantRef := strings.SplitN(image, "@", 2)[0] + "@" + digest.DigestStr()
				if got.Ref != wantRef {
					t.Errorf("Ref = %s, want %s", got.Ref, wantRef)
				}
				if got.KeyID != ids[tt.wantKey] {
					t.Errorf("KeyID = %s, want key %s (%s)", got.KeyID, tt.wantKey, ids[tt.wantKey])
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify(%s) = %+v, want %v", image, got, tt.wantKind)
			}
			if got != (oci.Verified{}) {
				t.Errorf("a refused image returned %+v", got)
			}
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("error %q is not %v", err, tt.wantKind)
			}
			t.Logf("refusal: %v", err)
			var e *oci.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *oci.Error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, image) {
				t.Errorf("error does not name the image %s: %s", image, msg)
			}
			if digest.DigestStr() != "" && (e.Digest != digest.DigestStr() || !strings.Contains(msg, digest.DigestStr())) {
				t.Errorf("error does not name digest %s: %s", digest.DigestStr(), msg)
			}
			if e.Next == "" || !strings.Contains(msg, "next: ") {
				t.Errorf("error gives no next step: %s", msg)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(msg, s) {
					t.Errorf("error lacks %q: %s", s, msg)
				}
			}
			if oci.ReasonOf(err) == "" || oci.ReasonOf(err) == oci.ReasonRegistry {
				t.Errorf("ReasonOf = %q for %v", oci.ReasonOf(err), tt.wantKind)
			}
		})
	}
}

// The cosign error types stay reachable for callers that want them.
func TestVerifyErrorsWrapCosignErrors(t *testing.T) {
	keyA, keyB := testKeys(t)
	reg := ocitest.StartRegistry(t)
	unsigned := ocitest.PushImage(t, reg.Ref("agent:1"))
	other := ocitest.PushImage(t, reg.Ref("agent:2"))
	ocitest.Sign(t, other, keyB)
	v := newVerifier(t, keyA)

	_, err := v.Verify(context.Background(), reg.Ref("agent:1"))
	var none *cosign.ErrNoSignaturesFound
	if !errors.As(err, &none) {
		t.Errorf("unsigned %s: %v does not wrap *cosign.ErrNoSignaturesFound", unsigned, err)
	}
	_, err = v.Verify(context.Background(), reg.Ref("agent:2"))
	var nomatch *cosign.ErrNoMatchingSignatures
	if !errors.As(err, &nomatch) {
		t.Errorf("wrong key: %v does not wrap *cosign.ErrNoMatchingSignatures", err)
	}
}

func TestResolve(t *testing.T) {
	reg := ocitest.StartRegistry(t)
	img := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
	idx := ocitest.PushIndex(t, reg.Ref("agent:2.0.0"))
	key, _ := testKeys(t)
	v := newVerifier(t, key)

	for ref, want := range map[string]name.Digest{
		reg.Ref("agent:1.0.0"):                    img,
		reg.Ref("agent:2.0.0"):                    idx,
		reg.Ref("agent@" + img.DigestStr()):       img,
		reg.Ref("agent:2.0.0@" + idx.DigestStr()): idx,
	} {
		got, err := v.Resolve(context.Background(), ref)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", ref, err)
		}
		if got.DigestStr() != want.DigestStr() || got.Context().Name() != want.Context().Name() {
			t.Errorf("Resolve(%s) = %s, want %s", ref, got, want)
		}
	}
	if _, err := v.Resolve(context.Background(), "Not A Reference!"); !errors.Is(err, oci.ErrBadReference) {
		t.Errorf("bad reference: %v, want ErrBadReference", err)
	}
}

// recordingTransport records the scheme and host of every request that
// reaches the network, and dials every address at target instead.
type recordingTransport struct {
	mu   sync.Mutex
	seen []string
	t    *http.Transport
}

func newRecordingTransport(target string) *recordingTransport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &recordingTransport{t: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, target)
		},
	}}
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.URL.Scheme+"://"+req.URL.Host)
	r.mu.Unlock()
	return r.t.RoundTrip(req)
}

func (r *recordingTransport) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func TestVerifyNeverUsesPlainHTTPOffLoopback(t *testing.T) {
	key, _ := testKeys(t)
	reg := ocitest.StartRegistry(t)
	d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
	ocitest.Sign(t, d, key)

	// A private-network registry that only speaks plain HTTP: every dial
	// lands on the in-process registry, whatever the address.
	const image = "192.168.77.1:5000/agent:1.0.0"
	control := newRecordingTransport(reg.Server.Listener.Addr().String())
	// Control: go-containerregistry alone falls back to HTTP for RFC 1918
	// addresses and would read this image in clear text.
	if _, err := remote.Get(name.MustParseReference(image), remote.WithTransport(control), remote.WithAuth(authn.Anonymous)); err != nil {
		t.Fatalf("control: plain-HTTP fallback did not work, the test proves nothing: %v", err)
	}

	rec := newRecordingTransport(reg.Server.Listener.Addr().String())
	v, err := oci.NewVerifier([][]byte{key.PublicPEM}, oci.Options{Transport: rec, AllowLoopbackHTTP: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), image)
	if !errors.Is(err, oci.ErrRegistry) {
		t.Fatalf("Verify(%s) = %v, want ErrRegistry", image, err)
	}
	if !strings.Contains(err.Error(), "plain HTTP refused") || !strings.Contains(err.Error(), "next: serve the registry over HTTPS") {
		t.Errorf("error does not say plain HTTP was refused and what to do: %v", err)
	}
	for _, u := range rec.requests() {
		if !strings.HasPrefix(u, "https://") {
			t.Errorf("a request reached the network over plain HTTP: %s", u)
		}
	}
}

func TestVerifyRefusesLoopbackHTTPUnlessAllowed(t *testing.T) {
	key, _ := testKeys(t)
	reg := ocitest.StartRegistry(t)
	d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
	ocitest.Sign(t, d, key)

	v, err := oci.NewVerifier([][]byte{key.PublicPEM}, oci.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), reg.Ref("agent:1.0.0")); !errors.Is(err, oci.ErrRegistry) || !strings.Contains(err.Error(), "plain HTTP refused") {
		t.Errorf("loopback HTTP without AllowLoopbackHTTP: %v, want plain HTTP refused", err)
	}
	// localhost is loopback too.
	port := reg.Host[strings.LastIndexByte(reg.Host, ':')+1:]
	if _, err := newVerifier(t, key).Verify(context.Background(), "localhost:"+port+"/agent:1.0.0"); err != nil {
		t.Errorf("localhost with AllowLoopbackHTTP: %v", err)
	}
}

// basicAuth guards h with one user and password, as a private registry does.
func basicAuth(h http.Handler, user, pass string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="upkeep-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func TestVerifyWithPullSecret(t *testing.T) {
	key, _ := testKeys(t)
	handler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	open := httptest.NewServer(handler)
	defer open.Close()
	private := httptest.NewServer(basicAuth(handler, "robot", "s3cret"))
	defer private.Close()
	openHost := strings.TrimPrefix(open.URL, "http://")
	privateHost := strings.TrimPrefix(private.URL, "http://")
	d := ocitest.PushImage(t, openHost+"/agent:1.0.0")
	ocitest.Sign(t, d, key)
	image := privateHost + "/agent:1.0.0"

	anon := newVerifier(t, key)
	_, err := anon.Verify(context.Background(), image)
	if !errors.Is(err, oci.ErrRegistry) || !strings.Contains(err.Error(), "pull secret") {
		t.Fatalf("anonymous against a private registry: %v, want ErrRegistry naming the pull secret", err)
	}

	// What `kubectl create secret docker-registry` stores: auth is base64("robot:s3cret").
	secret := []byte(`{"auths":{"http://` + privateHost + `/v2/":{"auth":"cm9ib3Q6czNjcmV0"}}}`)
	kc, err := oci.KeychainFromDockerConfig(secret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := oci.NewVerifier([][]byte{key.PublicPEM}, oci.Options{Keychain: kc, AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), image)
	if err != nil {
		t.Fatalf("with pull secret: %v", err)
	}
	if got.Digest != d.DigestStr() {
		t.Errorf("Digest = %s, want %s", got.Digest, d.DigestStr())
	}
}

func TestVerifyTimesOut(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	key, _ := testKeys(t)
	v, err := oci.NewVerifier([][]byte{key.PublicPEM}, oci.Options{AllowLoopbackHTTP: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = v.Verify(context.Background(), strings.TrimPrefix(hang.URL, "http://")+"/agent:1.0.0")
	if !errors.Is(err, oci.ErrRegistry) || !strings.Contains(err.Error(), "gave up after 300ms") {
		t.Errorf("hanging registry: %v, want ErrRegistry giving up after 300ms", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Verify took %s with a 300ms timeout", el)
	}
}

func TestVerifyBoundsManifestSize(t *testing.T) {
	key, _ := testKeys(t)
	reg := ocitest.StartRegistry(t)
	d := ocitest.PushImage(t, reg.Ref("agent:1.0.0"))
	ocitest.Sign(t, d, key)
	v, err := oci.NewVerifier([][]byte{key.PublicPEM}, oci.Options{AllowLoopbackHTTP: true, MaxManifestSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), reg.Ref("agent:1.0.0"))
	if !errors.Is(err, oci.ErrRegistry) || !strings.Contains(err.Error(), "above the limit of 64") {
		t.Errorf("oversized manifest: %v, want ErrRegistry naming the limit", err)
	}
}

func TestVerifyIsSafeForConcurrentUse(t *testing.T) {
	key, _ := testKeys(t)
	reg := ocitest.StartRegistry(t)
	signed := ocitest.PushImage(t, reg.Ref("agent:1"))
	ocitest.Sign(t, signed, key)
	ocitest.PushImage(t, reg.Ref("agent:2"))
	v := newVerifier(t, key)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			if i%2 == 0 {
				if _, err := v.Verify(context.Background(), reg.Ref("agent:1")); err != nil {
					errs <- err
				}
			} else if _, err := v.Verify(context.Background(), reg.Ref("agent:2")); !errors.Is(err, oci.ErrUnsigned) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkVerify(b *testing.B) {
	keyA, keyB := testKeys(b)
	reg := ocitest.StartRegistry(b)
	d := ocitest.PushImage(b, reg.Ref("agent:1.0.0"))
	ocitest.Sign(b, d, keyA)
	for _, bc := range []struct {
		name string
		keys []*ocitest.KeyPair
	}{
		{"first key matches", []*ocitest.KeyPair{keyA}},
		{"second key matches", []*ocitest.KeyPair{keyB, keyA}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var pems [][]byte
			for _, k := range bc.keys {
				pems = append(pems, k.PublicPEM)
			}
			// No cache: each pass reads and checks the signatures.
			v, err := oci.NewVerifier(pems, oci.Options{AllowLoopbackHTTP: true, CacheSize: -1})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := v.Verify(context.Background(), reg.Ref("agent:1.0.0")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
