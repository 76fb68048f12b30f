package envtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/discovery"
)

// runScript runs build-envtest.sh with its cache under cacheHome.
func runScript(t *testing.T, cacheHome string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{BuildScript()}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheHome)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// cacheKey is the sha256 of tools/go.sum, the script's cache key.
func cacheKey(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(BuildScript()), "tools", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestBuildScript(t *testing.T) {
	t.Run("a complete cache entry keyed by go.sum's hash is used without building", func(t *testing.T) {
		home := t.TempDir()
		dir := filepath.Join(home, "upkeep", "envtest", cacheKey(t))
		writeExecutable(t, filepath.Join(dir, "kube-apiserver"))
		writeExecutable(t, filepath.Join(dir, "etcd"))
		out, errOut, code := runScript(t, home)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || lines[len(lines)-1] != dir {
			t.Errorf("exit %d, last stdout line %q, want 0 and %s; stderr:\n%s", code, lines[len(lines)-1], dir, errOut)
		}
		if strings.Contains(errOut, "building") {
			t.Errorf("it built although the cache was complete:\n%s", errOut)
		}
	})
	t.Run("--cached-only reports a missing entry with exit code 3", func(t *testing.T) {
		out, errOut, code := runScript(t, t.TempDir(), "--cached-only")
		if code != 3 || out != "" || !strings.Contains(errOut, "not built yet") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 3, nothing, and a hint", code, out, errOut)
		}
	})
	t.Run("--cached-only treats an entry missing etcd as missing", func(t *testing.T) {
		home := t.TempDir()
		writeExecutable(t, filepath.Join(home, "upkeep", "envtest", cacheKey(t), "kube-apiserver"))
		if _, _, code := runScript(t, home, "--cached-only"); code != 3 {
			t.Errorf("exit %d, want 3", code)
		}
	})
	t.Run("an unknown argument is a usage error", func(t *testing.T) {
		if _, errOut, code := runScript(t, t.TempDir(), "--fast"); code != 2 || !strings.Contains(errOut, "usage") {
			t.Errorf("exit %d, stderr %q; want 2 and the usage", code, errOut)
		}
	})
}

func TestCheckAssets(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		files    map[string]os.FileMode
		wantErr  string
	}{
		{"both executables are there", map[string]os.FileMode{"kube-apiserver": 0o755, "etcd": 0o755}, ""},
		{"etcd is missing", map[string]os.FileMode{"kube-apiserver": 0o755}, "no etcd there"},
		{"kube-apiserver is not executable", map[string]os.FileMode{"kube-apiserver": 0o644, "etcd": 0o755}, "not an executable"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			for name, mode := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
					t.Fatal(err)
				}
			}
			err := checkAssets(dir)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("checkAssets = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestUnavailable runs the test binary again to see unavailable skip a test,
// or fail it under CI=true.
func TestUnavailable(t *testing.T) {
	if os.Getenv("UPKEEP_ENVTEST_UNAVAILABLE") == "1" {
		unavailable(t, "no control plane here")
		return
	}
	for _, tc := range []struct {
		ci   string
		want string
	}{
		{"", "--- SKIP: TestUnavailable"},
		{"false", "--- SKIP: TestUnavailable"},
		{"true", "--- FAIL: TestUnavailable"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailable$", "-test.v")
		cmd.Env = append(os.Environ(), "UPKEEP_ENVTEST_UNAVAILABLE=1", "CI="+tc.ci)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("CI=%q: want %q in:\n%s", tc.ci, tc.want, out)
		}
	}
}

// TestStart starts the real control plane and checks that the apiserver
// reports the release the script built (its -ldflags).
func TestStart(t *testing.T) {
	env := Start(t)
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" || v.Major != "1" || v.Minor != "37" {
		t.Errorf("apiserver version %s (major %q, minor %q), want v1.37.2", v.GitVersion, v.Major, v.Minor)
	}
}
