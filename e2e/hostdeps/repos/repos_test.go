package repos

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignedRepositories builds both repository kinds and checks their
// signatures with the verifiers the package managers use (gpgv, rpm -K).
func TestSignedRepositories(t *testing.T) {
	RequireTools(t, append(Tools, "gpgv", "rpm")...)
	ctx := context.Background()
	dir := t.TempDir()
	f, err := BuildFixture(ctx, dir, FixtureOptions{Versions: []string{"1.0.0", "1.1.0"}, Deb: true, RPM: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	t.Run("the deb carries the version and the payload", func(t *testing.T) {
		out, err := exec.Command("dpkg-deb", "-f", f.Debs["1.1.0"], "Version").Output()
		if err != nil || strings.TrimSpace(string(out)) != "1.1.0" {
			t.Fatalf("Version field = %q, %v", out, err)
		}
		out, _ = exec.Command("dpkg-deb", "-c", f.Debs["1.1.0"]).Output()
		if !strings.Contains(string(out), "root/root") || !strings.Contains(string(out), "."+DemoAgentBinary) {
			t.Fatalf("contents:\n%s", out)
		}
	})

	t.Run("the apt repository's InRelease verifies with the good key only", func(t *testing.T) {
		r, err := NewAptRepo(filepath.Join(dir, "apt"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"1.0.0", "1.1.0"} {
			if _, err := r.Add(f.Debs[v]); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Publish(ctx, f.Good); err != nil {
			t.Fatal(err)
		}
		good := filepath.Join(dir, "good.gpg")
		other := filepath.Join(dir, "other.gpg")
		f.Good.WritePublicKey(ctx, good, false)
		f.Other.WritePublicKey(ctx, other, false)
		inRelease := filepath.Join(r.Dir, "dists/stable/InRelease")
		if out, err := exec.Command("gpgv", "--keyring", good, inRelease).CombinedOutput(); err != nil {
			t.Fatalf("gpgv with the good key: %v\n%s", err, out)
		}
		if err := exec.Command("gpgv", "--keyring", other, inRelease).Run(); err == nil {
			t.Fatal("gpgv accepted InRelease with the other key")
		}
		srv, err := Serve(r.Dir)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		resp, err := http.Get(srv.URL + "dists/stable/main/binary-" + r.Arch + "/Packages")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if !strings.Contains(string(body), "Version: 1.0.0") || !strings.Contains(string(body), "Version: 1.1.0") {
			t.Fatalf("Packages served:\n%s", body)
		}
	})

	t.Run("rpms are signed by their key and a tampered one fails its digest", func(t *testing.T) {
		out, _ := exec.Command("rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", f.RPMs["1.0.0"]).Output()
		if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(f.Good.KeyID())) {
			t.Fatalf("good rpm signature = %q, want key %s", out, f.Good.KeyID())
		}
		out, _ = exec.Command("rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", f.OtherRPMs["1.0.0"]).Output()
		if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(f.Other.KeyID())) {
			t.Fatalf("other rpm signature = %q, want key %s", out, f.Other.KeyID())
		}
		bad := filepath.Join(dir, "tampered.rpm")
		CopyFile(f.RPMs["1.0.0"], bad)
		if err := Tamper(bad); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("rpm", "-K", "--nosignature", bad).CombinedOutput(); err == nil {
			t.Fatalf("rpm -K accepted a tampered package:\n%s", out)
		}
	})

	t.Run("the rpm repository's repomd.xml.asc verifies with the good key", func(t *testing.T) {
		r, err := NewRPMRepo(filepath.Join(dir, "rpm"))
		if err != nil {
			t.Fatal(err)
		}
		r.Add(f.RPMs["1.0.0"])
		if err := r.Publish(ctx, f.Good); err != nil {
			t.Fatal(err)
		}
		good := filepath.Join(dir, "good.gpg")
		repomd := filepath.Join(r.Dir, "repodata/repomd.xml")
		if out, err := exec.Command("gpgv", "--keyring", good, repomd+".asc", repomd).CombinedOutput(); err != nil {
			t.Fatalf("gpgv: %v\n%s", err, out)
		}
		if rf := string(r.RepoFile("t", "http://127.0.0.1:1/", "/k.asc")); !strings.Contains(rf, "gpgcheck=1") || !strings.Contains(rf, "gpgkey=file:///k.asc") {
			t.Fatalf("repo file:\n%s", rf)
		}
	})
}

func TestPackageValidation(t *testing.T) {
	for _, p := range []Package{
		{Name: "", Version: "1", Files: DemoAgentFiles("1")},
		{Name: "a", Version: "1"},
		{Name: "a", Version: "1", Files: []File{{Path: "relative/x"}}},
		{Name: "a", Version: "1", Files: []File{{Path: "/usr/../etc/x"}}},
	} {
		if err := p.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", p)
		}
	}
}
