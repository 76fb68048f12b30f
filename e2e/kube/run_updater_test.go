package kube

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"upkeep.dev/upkeep/installers/kube"
	"upkeep.dev/upkeep/installers/oci/ocitest"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/sources"
)

// reportToken is the bearer token the test's version server accepts.
const reportToken = "e2e-report-token-0123456789abcdef"

// checkUpdaterRuns runs the real `upkeep kube-updater` (built with -tags
// kube) with the example Deployment's exact arguments and environment, as
// the kubelet would start it: $(VAR) expanded from the container's env, the
// volumes' ConfigMaps and Secrets written to host folders in place of their
// mount paths, the container ports mapped to free loopback ports, and a real
// token of the updater's service account in place of the in-cluster one.
// The version server is a real one over examples/fleet, on TLS. With only
// the Role's permissions, the updater must start, win the Lease, answer its
// probes, decide about both example agents, save the group's schedule,
// report, and stop cleanly, without a single Forbidden.
func checkUpdaterRuns(t *testing.T, c *cluster, dep *unstructured.Unstructured) {
	bin := buildKubeUpdater(t)
	srv, reports := startVersionServer(t)

	var pod corev1.PodTemplateSpec
	tmpl, _, _ := unstructured.NestedMap(dep.Object, "spec", "template")
	toTyped(t, tmpl, &pod)
	ct := pod.Spec.Containers[slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == "updater" })]

	// What the README asks the operator to create, with the test's CA and token.
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	mustCreate(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "upkeep-server-ca", Namespace: agentsNS},
		Data: map[string]string{"ca.crt": string(caPEM)}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "upkeep-report-token", Namespace: agentsNS},
		Data: map[string][]byte{"token": []byte(reportToken + "\n")}})

	run := func(t *testing.T) *updaterProcess {
		env := containerEnvironment(t, ct, agentsNS)
		env["UPKEEP_SERVER"] = srv.URL // as an overlay points it at its server
		return startUpdater(t, c, bin, ct, pod.Spec, env)
	}

	t.Run("with the placeholder public key it refuses to start", func(t *testing.T) {
		p := run(t)
		code, out := p.wait(t, 60*time.Second)
		if code == 0 || !strings.Contains(out, "public keys") {
			t.Errorf("exit code %d, output:\n%s\nwant a failure about the public keys", code, out)
		}
	})

	// The operator replaces the placeholder with the real key.
	keys := ocitest.NewKeyPair(t)
	sec, err := c.kube.CoreV1().Secrets(agentsNS).Get(ctx(t), publicKeySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"cosign.pub": keys.PublicPEM}
	if _, err := c.kube.CoreV1().Secrets(agentsNS).Update(ctx(t), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	p := run(t)
	probe := func(path string, port int32) error {
		hc := &http.Client{Timeout: 2 * time.Second}
		resp, err := hc.Get(fmt.Sprintf("http://%s%s", p.hostPort(t, port), path))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
		}
		return nil
	}
	for _, pr := range []*corev1.Probe{ct.ReadinessProbe, ct.LivenessProbe} {
		port := namedPort(t, ct, pr.HTTPGet.Port.String())
		waitFor(t, 90*time.Second, "probe "+pr.HTTPGet.Path, func() error { p.alive(t); return probe(pr.HTTPGet.Path, port) })
	}
	waitFor(t, 30*time.Second, "GET /metrics", func() error { return probe("/metrics", namedPort(t, ct, "metrics")) })

	waitFor(t, 90*time.Second, "a decision on both example agents", func() error {
		p.alive(t)
		for _, w := range []struct{ kind, name string }{{"Deployment", "edge-agent"}, {"StatefulSet", "db-agent"}} {
			var ann map[string]string
			if w.kind == "Deployment" {
				d, err := c.kube.AppsV1().Deployments(agentsNS).Get(ctx(t), w.name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				ann = d.Annotations
			} else {
				s, err := c.kube.AppsV1().StatefulSets(agentsNS).Get(ctx(t), w.name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				ann = s.Annotations
			}
			if ann[kube.AnnotationLastDecision] == "" {
				return fmt.Errorf("%s %s has no %s yet", w.kind, w.name, kube.AnnotationLastDecision)
			}
			t.Logf("%s %s: %s", w.kind, w.name, ann[kube.AnnotationLastDecision])
		}
		return nil
	})
	waitFor(t, 30*time.Second, "the saved schedule of group eu-prod", func() error {
		p.alive(t)
		cm, err := c.kube.CoreV1().ConfigMaps(agentsNS).Get(ctx(t), kube.ScheduleConfigMapName("eu-prod"), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data[kube.ScheduleConfigMapKey] == "" {
			return fmt.Errorf("ConfigMap %s has no %s", cm.Name, kube.ScheduleConfigMapKey)
		}
		return nil
	})
	waitFor(t, 30*time.Second, "a report from the grouped agent", func() error {
		p.alive(t)
		if reports.Len() == 0 {
			return fmt.Errorf("the server holds no report")
		}
		return nil
	})
	lease, err := c.kube.CoordinationV1().Leases(agentsNS).Get(ctx(t), updaterName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Lease %s: %v", updaterName, err)
	}
	if h := lease.Spec.HolderIdentity; h == nil || *h == "" {
		t.Errorf("Lease %s has no holder", updaterName)
	}

	code, out := p.stop(t)
	if code != 0 {
		t.Errorf("after SIGTERM the updater exited with %d", code)
	}
	if strings.Contains(strings.ToLower(out), "forbidden") {
		t.Errorf("the updater was refused something; the Role lacks a permission:\n%s", grepLines(out, "forbidden"))
	}
	lease, err = c.kube.CoordinationV1().Leases(agentsNS).Get(ctx(t), updaterName, metav1.GetOptions{})
	if err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		t.Errorf("Lease still held by %q after a clean stop: releasing it (an update) failed", *lease.Spec.HolderIdentity)
	}
}

// buildKubeUpdater builds cmd/upkeep with the kube tag, which adds kube-updater.
func buildKubeUpdater(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "upkeep")
	bctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-tags", "kube", "-o", bin, "./cmd/upkeep")
	cmd.Dir = repoRoot()
	began := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags kube ./cmd/upkeep: %v\n%s", err, out)
	}
	t.Logf("built upkeep with -tags kube in %s", time.Since(began).Round(time.Second))
	return bin
}

// startVersionServer serves examples/fleet over TLS on loopback, accepting
// reports with reportToken.
func startVersionServer(t *testing.T) (*httptest.Server, reportStore) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	rec := reconcile.New(sources.NewFolder(filepath.Join(repoRoot(), "examples", "fleet")), reconcile.Options{Logger: quiet})
	if err := rec.Sync(t.Context()); err != nil {
		t.Fatalf("examples/fleet: %v", err)
	}
	tokens, err := report.ParseTokens("test tokens", []byte(reportToken+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := openReportStore(t)
	srv := httptest.NewTLSServer(server.New(rec, server.Options{Logger: quiet, ReportTokens: tokens, Store: store}))
	t.Cleanup(srv.Close)
	return srv, store
}

func mustCreate(t *testing.T, c *cluster, obj any) {
	t.Helper()
	var err error
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		_, err = c.kube.CoreV1().ConfigMaps(o.Namespace).Create(ctx(t), o, metav1.CreateOptions{})
	case *corev1.Secret:
		_, err = c.kube.CoreV1().Secrets(o.Namespace).Create(ctx(t), o, metav1.CreateOptions{})
	default:
		t.Fatalf("mustCreate: %T", obj)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// containerEnvironment is the container's environment as the kubelet sets
// it, for the forms the example uses.
func containerEnvironment(t *testing.T, ct corev1.Container, ns string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range ct.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = ns
		case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			env[e.Name] = strconv.FormatInt(ct.Resources.Limits.Memory().Value(), 10)
		default:
			t.Fatalf("env %s: the test cannot provide %+v; teach containerEnvironment", e.Name, e.ValueFrom)
		}
	}
	return env
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// updaterProcess is a running `upkeep kube-updater`.
type updaterProcess struct {
	cmd   *exec.Cmd
	out   *syncBuffer
	ports map[int32]string // container port -> host address
	done  chan struct{}
	code  int
}

func startUpdater(t *testing.T, c *cluster, bin string, ct corev1.Container, spec corev1.PodSpec, env map[string]string) *updaterProcess {
	t.Helper()
	root := t.TempDir()

	// Volumes: what the kubelet would mount, written where the args expect it.
	mounts := map[string]string{}
	for _, m := range ct.VolumeMounts {
		dir := filepath.Join(root, "volumes", m.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		vol := spec.Volumes[slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })]
		files := map[string][]byte{}
		switch {
		case vol.ConfigMap != nil:
			cm, err := c.kube.CoreV1().ConfigMaps(agentsNS).Get(ctx(t), vol.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", m.Name, err)
			}
			for k, v := range cm.Data {
				files[k] = []byte(v)
			}
		case vol.Secret != nil:
			s, err := c.kube.CoreV1().Secrets(agentsNS).Get(ctx(t), vol.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", m.Name, err)
			}
			files = s.Data
		case vol.EmptyDir != nil:
		default:
			t.Fatalf("volume %s: the test cannot mount it; teach startUpdater", m.Name)
		}
		for k, v := range files {
			if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mounts[m.MountPath] = dir
	}

	p := &updaterProcess{out: &syncBuffer{}, ports: map[int32]string{}, done: make(chan struct{})}
	for _, port := range ct.Ports {
		p.ports[port.ContainerPort] = freeLoopbackAddr(t)
	}
	var args []string
	for _, a := range ct.Args {
		a = envRef.ReplaceAllStringFunc(a, func(ref string) string {
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref // Kubernetes leaves unknown references as they are
		})
		// --flag=<mount path>/file: one replacement, the longest mount path.
		if name, value, ok := strings.Cut(a, "="); ok {
			best := ""
			for mp := range mounts {
				if strings.HasPrefix(value, mp+"/") && len(mp) > len(best) {
					best = mp
				}
			}
			if best != "" {
				a = name + "=" + mounts[best] + strings.TrimPrefix(value, best)
			}
		}
		for port, addr := range p.ports {
			if prefix, ok := strings.CutSuffix(a, "=:"+strconv.Itoa(int(port))); ok {
				a = prefix + "=" + addr
			}
		}
		if strings.Contains(a, "$(") || strings.Contains(a, "=/etc/") || strings.Contains(a, "=/var/") {
			t.Fatalf("argument %q names something the test does not provide", a)
		}
		args = append(args, a)
	}

	// The service account's own token, as the pod would have it.
	exp := int64(3600)
	tr, err := c.kube.CoreV1().ServiceAccounts(agentsNS).CreateToken(ctx(t), updaterSA,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for service account %s: %v", updaterSA, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthorityData: c.cfg.CAData}
	kc.AuthInfos[updaterSA] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["updater"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: updaterSA, Namespace: agentsNS}
	kc.CurrentContext = "updater"
	kubeconfig := filepath.Join(root, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "KUBECONFIG=" + kubeconfig}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("started upkeep %s", strings.Join(args, " "))
	go func() {
		err := p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if err != nil && p.code == 0 {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("updater output:\n%s", lastLines(p.out.String(), 60))
		}
	})
	return p
}

// alive fails the test at once if the updater has exited or was refused
// something by the apiserver (the Role lacks a permission).
func (p *updaterProcess) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("the updater exited with %d:\n%s", p.code, lastLines(p.out.String(), 40))
	default:
	}
	if out := p.out.String(); strings.Contains(strings.ToLower(out), "forbidden") {
		t.Fatalf("the updater was refused something; the Role lacks a permission:\n%s", lastLines(grepLines(out, "forbidden"), 5))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func (p *updaterProcess) wait(t *testing.T, timeout time.Duration) (int, string) {
	t.Helper()
	select {
	case <-p.done:
		return p.code, p.out.String()
	case <-time.After(timeout):
		t.Fatalf("the updater is still running after %s:\n%s", timeout, p.out.String())
		return 0, ""
	}
}

// stop sends SIGTERM, as the kubelet does, and waits for the exit.
func (p *updaterProcess) stop(t *testing.T) (int, string) {
	t.Helper()
	p.alive(t)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return p.wait(t, 30*time.Second)
}

func (p *updaterProcess) hostPort(t *testing.T, containerPort int32) string {
	t.Helper()
	addr, ok := p.ports[containerPort]
	if !ok {
		t.Fatalf("container port %d is not declared", containerPort)
	}
	return addr
}

func namedPort(t *testing.T, ct corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range ct.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", ct.Name, name)
	return 0
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(strings.ToLower(l), substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// syncBuffer is a bytes.Buffer safe for the process's two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
