package kube

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"upkeep.dev/upkeep/installers/kube"
	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/installers/oci/ocitest"
)

// scopedImages adapts an oci.Verifier with trust policies to the updater,
// as cmd/upkeep does: each workload's trust scope picks the policy.
type scopedImages struct{ v *oci.Verifier }

func (s scopedImages) Verify(ctx context.Context, image string) (kube.Verified, error) {
	return s.VerifyScoped(ctx, image, kube.TrustScope{})
}

func (s scopedImages) VerifyScoped(ctx context.Context, image string, scope kube.TrustScope) (kube.Verified, error) {
	r, err := s.v.VerifyIn(ctx, image, oci.Scope{Policy: scope.Policy, Channel: scope.Channel})
	if err != nil {
		return kube.Verified{}, err
	}
	return kube.Verified{Ref: r.Ref, Digest: r.Digest, KeyID: r.Signer()}, nil
}

const (
	ciIssuer  = "https://token.actions.githubusercontent.com"
	ciSubject = "https://github.com/example/agent/.github/workflows/release.yml@refs/tags/v1.1.0"
)

// TestBundleSignedImagesConverge runs the updater against images signed
// only in the Sigstore bundle format, as cosign v3 signs by default: no
// "sha256-<hex>.sig" tag anywhere. A keyless bundle (test CA, log and
// timestamp authority, trusted_root.json) and a key bundle are deployed,
// pinned to the verified digest; a keyless bundle from another identity
// is refused.
func TestBundleSignedImagesConverge(t *testing.T) {
	e := newEnv(t)
	e.simulateControllers(t)
	ss := ocitest.NewSigstore(t)
	repo := e.images.reg.Host + "/bundled"
	digests := map[string]string{}
	push := func(version string) name.Digest {
		d := ocitest.PushImage(t, repo+":"+version)
		digests[version] = d.DigestStr()
		return d
	}
	pushed := []name.Digest{push("1.0.0")} // what the workloads run now
	d := push("1.1.0")
	ss.SignKeyless(t, d, ocitest.Keyless{Subject: ciSubject, Issuer: ciIssuer})
	pushed = append(pushed, d)
	d = push("1.2.0")
	ocitest.AttachBundle(t, d, e.images.trusted)
	pushed = append(pushed, d)
	d = push("1.3.0")
	ss.SignKeyless(t, d, ocitest.Keyless{Subject: "https://github.com/attacker/fork/.github/workflows/release.yml@refs/heads/main", Issuer: ciIssuer})
	pushed = append(pushed, d)
	for _, d := range pushed {
		if ocitest.HasSignatureTag(t, d) {
			t.Fatalf("%s has a classic signature tag: the test would not prove that bundles alone suffice", d)
		}
	}

	v, err := oci.New(oci.Trust{
		Policies: map[string]oci.Policy{
			"ci":      {TrustedRootJSON: ss.TrustedRootJSON, TrustedRootName: "test trusted_root.json", Keyless: []oci.Identity{{Issuer: ciIssuer, Subject: ciSubject}}},
			"release": {KeysPEM: [][]byte{e.images.trusted.PublicPEM}, KeyNames: []string{"trusted test key"}},
		},
		Channels: map[string]string{"c-b-keyless": "ci"},
		Default:  "release",
	}, oci.Options{AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	o := e.options(t)
	o.Verifier = scopedImages{v}
	e.start(t, e.cfg, o)

	setup := func(t *testing.T, name, version string) (ns, channel, group string) {
		t.Parallel()
		ns, channel, group = e.namespace(t, "b-"+name), "c-b-"+name, "g-b-"+name
		e.fleet.setChannel(t, channel, version, false)
		e.fleet.setGroup(t, group, channel, open, openD)
		return ns, channel, group
	}
	pinned := func(version string) string { return repo + ":" + version + "@" + digests[version] }

	t.Run("a keyless bundle from the channel policy's identity is deployed pinned to its digest", func(t *testing.T) {
		ns, ch, gr := setup(t, "keyless", "1.1.0")
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", image: repo + ":1.0.0", annotations: map[string]string{kube.AnnotationChannel: ch, kube.AnnotationGroup: gr}})
		e.waitImage(t, ns, "agent", false, pinned("1.1.0"), waitLong)
		note := e.event(t, ns, "agent", kube.EventUpdating, "InsideWindow", waitLong)
		if !strings.Contains(note, `keyless subject "`+ciSubject+`"`) {
			t.Errorf("the Updating event does not name the keyless signer: %s", note)
		}
	})
	t.Run("a key bundle is deployed under the default policy", func(t *testing.T) {
		ns, ch, gr := setup(t, "key", "1.2.0")
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", image: repo + ":1.0.0", annotations: map[string]string{kube.AnnotationChannel: ch, kube.AnnotationGroup: gr}})
		e.waitImage(t, ns, "agent", false, pinned("1.2.0"), waitLong)
	})
	t.Run("a keyless bundle from another identity is refused under the workload's policy, the workload unchanged", func(t *testing.T) {
		ns, ch, gr := setup(t, "fork", "1.3.0")
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", image: repo + ":1.0.0", annotations: map[string]string{
			kube.AnnotationChannel: ch, kube.AnnotationGroup: gr, kube.AnnotationTrustPolicy: "ci"}})
		obj := e.waitDecision(t, ns, "agent", false, waitLong, "a refusal", func(s *kube.Status) bool { return s.Outcome == kube.OutcomeRefused })
		st := lastDecision(t, obj)
		for _, want := range []string{repo + ":1.3.0", digests["1.3.0"], "attacker/fork", "subject is not trusted", "next: "} {
			if !strings.Contains(st.OutcomeMessage, want) {
				t.Errorf("refusal lacks %q: %s", want, st.OutcomeMessage)
			}
		}
		if st.OutcomeReason != oci.ReasonWrongIdentity {
			t.Errorf("reason %s, want %s", st.OutcomeReason, oci.ReasonWrongIdentity)
		}
		e.event(t, ns, "agent", kube.EventRefused, oci.ReasonWrongIdentity, waitLong)
		if got := image(e.getObj(t, ns, "agent", false)); got != repo+":1.0.0" {
			t.Fatalf("the workload changed after a refusal: %s", got)
		}
	})
}

// TestUpdaterBinaryFollowsItsTrustPolicyFile runs the real `upkeep
// kube-updater` with --trust-policy: a channel mapped to a keyless policy
// gets its bundle-signed image, pinned to the verified digest.
func TestUpdaterBinaryFollowsItsTrustPolicyFile(t *testing.T) {
	bin := buildKubeUpdater(t)
	e := newEnv(t)
	e.simulateControllers(t)
	ss := ocitest.NewSigstore(t)
	repo := e.images.reg.Host + "/cli"
	ocitest.PushImage(t, repo+":1.0.0")
	d := ocitest.PushImage(t, repo+":1.1.0")
	ss.SignKeyless(t, d, ocitest.Keyless{Subject: ciSubject, Issuer: ciIssuer})

	dir := t.TempDir()
	policy := "policies:\n  ci:\n    keyless:\n      - issuer: " + ciIssuer + "\n        subject: " + ciSubject + "\n    trustedRoot: trusted_root.json\n" +
		"channels:\n  c-cli: ci\n"
	for name, data := range map[string][]byte{"trust.yaml": []byte(policy), "trusted_root.json": ss.TrustedRootJSON} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: e.cfg.Host, CertificateAuthorityData: e.cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: e.cfg.BearerToken, ClientCertificateData: e.cfg.CertData, ClientKeyData: e.cfg.KeyData}
	kc.Contexts["admin"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "admin"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	ns := e.namespace(t, "cli")
	e.fleet.setChannel(t, "c-cli", "1.1.0", false)
	e.fleet.setGroup(t, "g-cli", "c-cli", open, openD)
	e.healthy(t, ns, "agent")
	e.create(t, workload{ns: ns, name: "agent", image: repo + ":1.0.0", annotations: map[string]string{kube.AnnotationChannel: "c-cli", kube.AnnotationGroup: "g-cli"}})

	out := &syncBuffer{}
	cmd := exec.Command(bin, "kube-updater", "--server", e.fleet.srv.URL, "--token-file", e.fleet.token,
		"--trust-policy", filepath.Join(dir, "trust.yaml"), "--kubeconfig", kubeconfig, "--namespace", ns,
		"--allow-loopback-http-registry", "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--poll-interval=1s", "--log-level=debug")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when the updater has exited; then waitErr is set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("updater output:\n%s", lastLines(out.String(), 60))
		}
	})
	e.waitImage(t, ns, "agent", false, repo+":1.1.0@"+d.DigestStr(), waitLong)
	if !strings.Contains(out.String(), `policy \"ci\" trusts keyless`) {
		t.Errorf("the startup log does not list the policies:\n%s", lastLines(out.String(), 20))
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("after SIGTERM: %v", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Error("the updater did not stop within 30s of SIGTERM")
	}
}
