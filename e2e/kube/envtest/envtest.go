// Package envtest starts a real kube-apiserver and etcd for a test, with the
// binaries that e2e/kube/build-envtest.sh builds from the Go module proxy and
// caches by the hash of e2e/kube/tools/go.sum.
//
// envtest runs no controllers and no kubelet: Deployments get no ReplicaSets
// and no pods. Pods and workload status are whatever the test writes.
// Unix only, as controller-runtime's envtest is.
package envtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv, when set, names a directory that holds kube-apiserver and etcd;
// nothing is built then. It is the variable controller-runtime reads too.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// Timeouts of the control plane. envtest's default of 20s to start is too
// short on a loaded 2-core machine, where the apiserver takes up to a minute.
const (
	StartTimeout = 2 * time.Minute
	StopTimeout  = time.Minute
)

// buildTimeout bounds build-envtest.sh when the test has no deadline: a cold
// build takes about 5 minutes on 2 idle cores.
const buildTimeout = 30 * time.Minute

// Start starts kube-apiserver and etcd and stops them when the test ends.
// The returned environment's Config is an admin (system:masters) client
// configuration. It is StartEnvironment with an empty environment.
func Start(t testing.TB) *envtest.Environment {
	t.Helper()
	return StartEnvironment(t, &envtest.Environment{})
}

// Config starts a control plane like Start and returns only its admin client
// configuration.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	return Start(t).Config
}

// StartEnvironment starts env, which may carry CRDs or extra apiserver flags,
// with the binaries from Assets, and stops it when the test ends. It fills in
// BinaryAssetsDirectory and the start and stop timeouts when unset, and never
// uses an existing cluster (USE_EXISTING_CLUSTER is ignored, so a test can
// not touch a real cluster by accident).
func StartEnvironment(t testing.TB, env *envtest.Environment) *envtest.Environment {
	t.Helper()
	dir := Assets(t)
	if env.BinaryAssetsDirectory == "" {
		env.BinaryAssetsDirectory = dir
	}
	if env.ControlPlaneStartTimeout == 0 {
		env.ControlPlaneStartTimeout = StartTimeout
	}
	if env.ControlPlaneStopTimeout == 0 {
		env.ControlPlaneStopTimeout = StopTimeout
	}
	useExisting := false
	env.UseExistingCluster = &useExisting

	began := time.Now()
	if _, err := env.Start(); err != nil {
		// Stop whatever did start (etcd without an apiserver, say).
		_ = env.Stop()
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", dir, err)
	}
	t.Logf("kube-apiserver at %s started in %s", env.Config.Host, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping kube-apiserver and etcd: %v", err)
		}
	})
	return env
}

var assets struct {
	mu  sync.Mutex
	dir string // set once found
	err error  // set once the build failed: later tests do not retry it
}

// Assets returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS
// when set, otherwise build-envtest.sh's cache directory, built on first use
// (about 5 minutes and 2.3 GB of memory). The result is kept for the process.
//
// When the binaries cannot be had, the test is skipped, except under CI=true,
// where it fails. With -short a missing cache is not built: the test is
// skipped (CI=true fails it).
func Assets(t testing.TB) string {
	t.Helper()
	assets.mu.Lock()
	defer assets.mu.Unlock()
	if assets.dir != "" {
		return assets.dir
	}
	if assets.err != nil {
		unavailable(t, "kube-apiserver and etcd for envtest: %v", assets.err)
	}
	if dir := os.Getenv(AssetsEnv); dir != "" {
		if err := checkAssets(dir); err != nil {
			t.Fatalf("%s=%s: %v; unset it to build the binaries, or point it at a directory that has them", AssetsEnv, dir, err)
		}
		assets.dir = dir
		return dir
	}
	dir, err := runBuildScript(t)
	if err != nil {
		assets.err = err
		unavailable(t, "kube-apiserver and etcd for envtest: %v", err)
	}
	if err := checkAssets(dir); err != nil {
		t.Fatalf("build-envtest.sh printed %s, but %v", dir, err)
	}
	assets.dir = dir
	return dir
}

// BuildScript is the path of build-envtest.sh, found from this source file.
func BuildScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(filepath.Dir(file)), "build-envtest.sh")
}

// errNotCached is build-envtest.sh --cached-only's exit code 3.
var errNotCached = errors.New("not built yet")

func runBuildScript(t testing.TB) (string, error) {
	t.Helper()
	script := BuildScript()
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("the build script: %w (run the tests from a checkout of the repository)", err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		return "", fmt.Errorf("bash is needed to run %s: %w", script, err)
	}
	args := []string{script}
	if testing.Short() {
		args = append(args, "--cached-only")
	}

	deadline := time.Now().Add(buildTimeout)
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := tt.Deadline(); ok {
			// Leave the test time to report rather than be killed by go test.
			deadline = d.Add(-30 * time.Second)
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	cmd := exec.CommandContext(ctx, "bash", args...)
	killGroupOnCancel(cmd)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", script, err)
	}
	// Progress lines of a cold build show up as they come (go test -v).
	var tail []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		if tail = append(tail, line); len(tail) > 20 {
			tail = tail[1:]
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s did not finish within %s; run it by hand to warm the cache", script, time.Since(began).Round(time.Second))
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 && testing.Short() {
		return "", fmt.Errorf("%w, and -short does not build them; run %s once (about 5 minutes)", errNotCached, script)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %v:\n%s", script, err, strings.Join(tail, "\n"))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("%s printed no directory", script)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Logf("built kube-apiserver and etcd into %s in %s", dir, d.Round(time.Second))
	}
	return dir, nil
}

// checkAssets reports whether dir holds executable kube-apiserver and etcd.
func checkAssets(dir string) error {
	for _, name := range []string{"kube-apiserver", "etcd"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("no %s there: %w", name, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s there is not an executable file", filepath.Join(dir, name))
		}
	}
	return nil
}

// unavailable skips the test, or fails it under CI=true: a CI run must
// never pass by skipping the Kubernetes tests.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing control plane fails the test)", msg)
	}
	t.Skipf("%s (skipped; with CI=true this fails)", msg)
}
