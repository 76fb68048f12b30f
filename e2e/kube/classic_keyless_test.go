package kube

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"upkeep.dev/upkeep/installers/kube"
	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/installers/oci/ocitest"
)

// TestClassicKeylessImagesConverge runs the updater against images signed
// only as cosign v2 signs keyless by default: a "sha256-<hex>.sig" tag whose
// layer carries the Fulcio certificate and the Rekor bundle (signed entry
// timestamp), and no Sigstore bundle referrer. The trusted identity's image
// is deployed pinned to its digest; that signature copied onto a later
// image is refused as a signature for another digest.
func TestClassicKeylessImagesConverge(t *testing.T) {
	e := newEnv(t)
	e.simulateControllers(t)
	ss := ocitest.NewSigstore(t)
	repo := e.images.reg.Host + "/classic-keyless"
	digests := map[string]name.Digest{}
	for _, version := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		digests[version] = ocitest.PushImage(t, repo+":"+version)
	}
	ss.SignClassicKeyless(t, digests["1.1.0"], ocitest.ClassicKeyless{Subject: ciSubject, Issuer: ciIssuer})
	ocitest.ReplaySignature(t, digests["1.1.0"], digests["1.2.0"])
	for _, v := range []string{"1.1.0", "1.2.0"} {
		if len(ocitest.Bundles(t, digests[v])) > 0 {
			t.Fatalf("%s has a bundle referrer: the test would not prove that classic keyless signatures suffice", v)
		}
	}

	v, err := oci.New(oci.Trust{
		Policies: map[string]oci.Policy{
			"ci": {TrustedRootJSON: ss.TrustedRootJSON, TrustedRootName: "test trusted_root.json", Keyless: []oci.Identity{{Issuer: ciIssuer, Subject: ciSubject}}},
		},
		Default: "ci",
	}, oci.Options{AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	o := e.options(t)
	o.Verifier = scopedImages{v}
	e.start(t, e.cfg, o)

	setup := func(t *testing.T, name, version string) (ns, channel, group string) {
		t.Parallel()
		ns, channel, group = e.namespace(t, "ck-"+name), "c-ck-"+name, "g-ck-"+name
		e.fleet.setChannel(t, channel, version, false)
		e.fleet.setGroup(t, group, channel, open, openD)
		return ns, channel, group
	}

	t.Run("a classic keyless signature from the policy's identity is deployed pinned to its digest", func(t *testing.T) {
		ns, ch, gr := setup(t, "ok", "1.1.0")
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", image: repo + ":1.0.0", annotations: map[string]string{kube.AnnotationChannel: ch, kube.AnnotationGroup: gr}})
		e.waitImage(t, ns, "agent", false, repo+":1.1.0@"+digests["1.1.0"].DigestStr(), waitLong)
		note := e.event(t, ns, "agent", kube.EventUpdating, "InsideWindow", waitLong)
		if !strings.Contains(note, `keyless subject "`+ciSubject+`"`) {
			t.Errorf("the Updating event does not name the keyless signer: %s", note)
		}
	})
	t.Run("a classic keyless signature replayed onto another image is refused, the workload unchanged", func(t *testing.T) {
		ns, ch, gr := setup(t, "replay", "1.2.0")
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", image: repo + ":1.0.0", annotations: map[string]string{kube.AnnotationChannel: ch, kube.AnnotationGroup: gr}})
		obj := e.waitDecision(t, ns, "agent", false, waitLong, "a refusal", func(s *kube.Status) bool { return s.Outcome == kube.OutcomeRefused })
		st := lastDecision(t, obj)
		for _, want := range []string{repo + ":1.2.0", digests["1.2.0"].DigestStr(), "its payload names " + digests["1.1.0"].DigestStr(), "next: "} {
			if !strings.Contains(st.OutcomeMessage, want) {
				t.Errorf("refusal lacks %q: %s", want, st.OutcomeMessage)
			}
		}
		if st.OutcomeReason != oci.ReasonOtherDigest {
			t.Errorf("reason %s, want %s", st.OutcomeReason, oci.ReasonOtherDigest)
		}
		e.event(t, ns, "agent", kube.EventRefused, oci.ReasonOtherDigest, waitLong)
		if got := image(e.getObj(t, ns, "agent", false)); got != repo+":1.0.0" {
			t.Fatalf("the workload changed after a refusal: %s", got)
		}
	})
}
