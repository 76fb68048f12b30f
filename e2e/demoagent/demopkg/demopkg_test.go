package demopkg

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// output runs a tool and returns its standard output (rpm warns on stderr
// about keys it does not know).
func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func TestBuildPackages(t *testing.T) {
	dir := t.TempDir()
	began := time.Now()
	p := BuildPackages(t, dir)
	t.Logf("built %d binaries, %d .debs, %d .rpms and a key in %s", len(p.Binaries), len(p.Debs), len(p.RPMs), time.Since(began).Round(10*time.Millisecond))

	t.Run("each binary carries its version and only 1.2.0 is broken", func(t *testing.T) {
		for _, v := range DefaultVersions {
			if got := strings.TrimSpace(output(t, p.Binaries[v], "--version")); got != v {
				t.Errorf("%s --version = %q", v, got)
			}
			if p.Broken[v] != (v == BrokenVersion) {
				t.Errorf("Broken[%s] = %t", v, p.Broken[v])
			}
		}
		cmd := exec.Command(p.Binaries[BrokenVersion], "--listen", "127.0.0.1:0")
		began := time.Now()
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || time.Since(began) > 3*time.Second {
			t.Fatalf("broken binary ended with %v after %s, want exit 1 after about 1s", err, time.Since(began))
		}
	})

	t.Run("the .deb holds the binary and the unit and no maintainer scripts", func(t *testing.T) {
		deb := p.Debs["1.1.0"]
		if got := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, "Package", "Version")); got != "Package: demo-agent\nVersion: 1.1.0" {
			t.Fatalf("control fields:\n%s", got)
		}
		contents := output(t, "dpkg-deb", "-c", deb)
		for _, want := range []string{"." + Binary, "." + DebUnitPath, "-rwxr-xr-x root/root"} {
			if !strings.Contains(contents, want) {
				t.Errorf("contents lack %q:\n%s", want, contents)
			}
		}
		ctrl := t.TempDir()
		output(t, "dpkg-deb", "--control", deb, ctrl)
		entries, _ := os.ReadDir(ctrl)
		for _, e := range entries {
			if e.Name() != "control" && e.Name() != "md5sums" {
				t.Errorf("control area holds %s; the packages must have no maintainer scripts", e.Name())
			}
		}
		x := t.TempDir()
		output(t, "dpkg-deb", "-x", deb, x)
		unit, _ := os.ReadFile(filepath.Join(x, DebUnitPath))
		for _, want := range []string{"ExecStart=/usr/bin/demo-agent --listen " + p.Addr() + "\n", "Type=simple", "Restart=on-failure", "RestartSec=1"} {
			if !strings.Contains(string(unit), want) {
				t.Errorf("unit lacks %q:\n%s", want, unit)
			}
		}
	})

	t.Run("the .rpm is signed by the key and has no scripts", func(t *testing.T) {
		rpm := p.RPMs["1.1.0"]
		if got := output(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION}-%{RELEASE}", rpm); got != "demo-agent 1.1.0-1" {
			t.Fatalf("rpm NEVR = %q", got)
		}
		if got := strings.ToLower(output(t, "rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", rpm)); !strings.Contains(got, strings.ToLower(p.Key.KeyID())) {
			t.Fatalf("signature %q is not by key %s", got, p.Key.KeyID())
		}
		if got := strings.TrimSpace(output(t, "rpm", "-qp", "--scripts", rpm)); got != "" {
			t.Fatalf("scripts:\n%s", got)
		}
		files := output(t, "rpm", "-qpl", rpm)
		if !strings.Contains(files, Binary) || !strings.Contains(files, RPMUnitPath) {
			t.Fatalf("files:\n%s", files)
		}
	})

	t.Run("an apt repository serves the published versions and takes more later", func(t *testing.T) {
		r := p.ServeAptT(t, "1.0.0")
		packages := r.URL + "dists/stable/main/binary-" + r.Arch + "/Packages"
		if got := fetch(t, packages); !strings.Contains(got, "Version: 1.0.0") || strings.Contains(got, "Version: 1.1.0") {
			t.Fatalf("Packages:\n%s", got)
		}
		if err := r.Add(context.Background(), p, "1.1.0"); err != nil {
			t.Fatal(err)
		}
		if got := fetch(t, packages); !strings.Contains(got, "Version: 1.0.0") || !strings.Contains(got, "Version: 1.1.0") {
			t.Fatalf("Packages after Add:\n%s", got)
		}
		kr := filepath.Join(t.TempDir(), "k.gpg")
		os.WriteFile(kr, r.Keyring, 0o644)
		inRelease := filepath.Join(t.TempDir(), "InRelease")
		os.WriteFile(inRelease, []byte(fetch(t, r.URL+"dists/stable/InRelease")), 0o644)
		output(t, "gpgv", "--keyring", kr, inRelease)
		src := string(r.Source("/etc/apt/keyrings/demo-agent.gpg"))
		if !strings.Contains(src, "URIs: "+r.URL) || !strings.Contains(src, "Signed-By: /etc/apt/keyrings/demo-agent.gpg") {
			t.Fatalf("source:\n%s", src)
		}
		if err := r.Add(context.Background(), p, "9.9.9"); err == nil || !strings.Contains(err.Error(), "9.9.9") || !strings.Contains(err.Error(), "1.2.0") {
			t.Fatalf("Add of an unbuilt version = %v, want an error naming it and the built ones", err)
		}
	})
}
