package kube

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestReadConfigTrustPolicy(t *testing.T) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "r.example/agent:1.0.0"}}}
	for _, tt := range []struct {
		scenario string
		ann      map[string]string
		want     TrustScope
		err      string
	}{
		{"without the annotation the channel selects the policy", map[string]string{AnnotationChannel: "stable/cloud"}, TrustScope{Channel: "stable/cloud"}, ""},
		{"the annotation names the policy, the channel kept for the message", map[string]string{AnnotationChannel: "stable/cloud", AnnotationTrustPolicy: "teleport-ci"}, TrustScope{Policy: "teleport-ci", Channel: "stable/cloud"}, ""},
		{"a policy name with capitals is refused, naming the annotation", map[string]string{AnnotationChannel: "s", AnnotationTrustPolicy: "Release"}, TrustScope{}, "annotation upkeep.dev/trust-policy: \"Release\" is not a trust policy name"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			c, err := ReadConfig("agent", tt.ann, spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || c.TrustScope() != tt.want {
				t.Fatalf("TrustScope() = %+v, %v; want %+v", c.TrustScope(), err, tt.want)
			}
		})
	}
}

// scopedVerifier accepts an image only under the policy "ci", and counts
// calls per scope. A fake: this tests the cache's keying, not verification.
type scopedVerifier struct {
	mu    sync.Mutex
	calls map[TrustScope]int
}

func (s *scopedVerifier) Verify(ctx context.Context, image string) (Verified, error) {
	return s.VerifyScoped(ctx, image, TrustScope{})
}

func (s *scopedVerifier) VerifyScoped(_ context.Context, image string, scope TrustScope) (Verified, error) {
	s.mu.Lock()
	s.calls[scope]++
	s.mu.Unlock()
	if scope.Policy != "ci" {
		return Verified{}, reasonErr{"SignatureMismatch", errors.New("not signed as policy " + scope.Policy + " requires")}
	}
	return Verified{Ref: image, Digest: dgst, KeyID: "keyless ci"}, nil
}

func TestVerifyCacheKeepsResultsPerTrustScope(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	sv := &scopedVerifier{calls: map[TrustScope]int{}}
	c := newVerifyCache(sv, time.Minute, clock)
	ctx := context.Background()
	img := "r.example/agent:1.1.0"
	ci, release := TrustScope{Policy: "ci", Channel: "stable"}, TrustScope{Policy: "release", Channel: "stable"}

	for range 3 {
		if v, err := c.VerifyFor(ctx, img, ci); err != nil || v.Digest != dgst {
			t.Fatalf("under ci: %+v, %v", v, err)
		}
		if _, err := c.VerifyFor(ctx, img, release); VerifyReason(err) != "SignatureMismatch" {
			t.Fatalf("under release: %v, want SignatureMismatch: a result for another policy was reused", err)
		}
	}
	if sv.calls[ci] != 1 || sv.calls[release] != 1 {
		t.Errorf("calls %v: want one verification per scope within the TTL", sv.calls)
	}
	now = now.Add(2 * time.Minute)
	if _, err := c.VerifyFor(ctx, img, ci); err != nil || sv.calls[ci] != 2 {
		t.Errorf("after the TTL: %v, calls %v; want a new verification", err, sv.calls)
	}
}

func TestVerifyCacheRefusesANamedPolicyWithoutPolicies(t *testing.T) {
	c := newVerifyCache(pinnedVerifier{}, -1, time.Now)
	_, err := c.VerifyFor(context.Background(), "r.example/agent:1.1.0", TrustScope{Policy: "ci"})
	if err == nil || VerifyReason(err) != ReasonNoTrustPolicies || !strings.Contains(err.Error(), "--trust-policy") {
		t.Fatalf("err = %v (reason %s), want a refusal saying to start with --trust-policy", err, VerifyReason(err))
	}
	if v, err := c.VerifyFor(context.Background(), "r.example/agent:1.1.0", TrustScope{Channel: "stable"}); err != nil || v.Digest == "" {
		t.Fatalf("without a named policy the plain verifier is used: %+v, %v", v, err)
	}
}
