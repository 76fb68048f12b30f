// Package demopkg builds the demo agent (e2e/demoagent) the way a vendor
// ships it, for end-to-end tests of the host updater: one binary per version
// (the version and the broken switch set with -ldflags -X), packaged as a
// .deb and a signed .rpm together with its systemd unit, and published in
// signed apt and rpm-md repositories served on loopback. Packaging, signing
// and serving are e2e/hostdeps/repos; this package only says what the demo
// agent's packages hold.
package demopkg

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
)

// What the demo agent's packages are called and install.
const (
	Name     = "demo-agent"
	Binary   = "/usr/bin/demo-agent"
	UnitName = "demo-agent.service"
	// DebUnitPath is where the .deb puts the unit (Debian 12's convention);
	// RPMUnitPath is where the .rpm puts it (on rpm distributions /lib is a
	// symlink owned by another package). On a merged-/usr host both are one file.
	DebUnitPath = "/lib/systemd/system/" + UnitName
	RPMUnitPath = "/usr/lib/systemd/system/" + UnitName
)

// DefaultVersions are built when Options.Versions is empty; BrokenVersion is
// built broken unless Options.Broken says otherwise.
var DefaultVersions = []string{"1.0.0", "1.1.0", "1.2.0"}

// BrokenVersion answers 500 on /healthz and exits 1 a second after it starts,
// so systemd restarts it (NRestarts rises) until the start limit puts the
// unit in "failed".
const BrokenVersion = "1.2.0"

// Options says what to build.
type Options struct {
	Versions []string // default DefaultVersions
	// Broken lists the versions built broken; nil means {BrokenVersion},
	// an empty non-nil slice means none.
	Broken []string
	// Port is the loopback port the unit's ExecStart listens on; 0 picks a
	// free one (the container and the host share the network, so a fixed
	// port would collide between tests running at once).
	Port    int
	SkipDeb bool
	SkipRPM bool
	// PostInstallSleep gives every package a post-install script that takes
	// this long (repos.Package.PostInstallSleep), so a test can stop the
	// updater in the middle of the package manager's transaction.
	PostInstallSleep time.Duration
}

// Packages are the built binaries and packages, keyed by version.
type Packages struct {
	Dir      string
	Port     int
	Key      *repos.Key        // signs the .rpms and the repositories
	Binaries map[string]string // host path of each version's demo-agent binary
	Debs     map[string]string // .deb paths (apt signs repositories, not packages)
	RPMs     map[string]string // .rpm paths, signed with Key
	Broken   map[string]bool
}

// Addr is the agent's listen address, 127.0.0.1:Port.
func (p *Packages) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.Port) }

// HealthURL is the agent's /healthz URL.
func (p *Packages) HealthURL() string { return "http://" + p.Addr() + "/healthz" }

// VersionURL is the agent's /version URL.
func (p *Packages) VersionURL() string { return "http://" + p.Addr() + "/version" }

// Close stops the signing key's gpg-agent.
func (p *Packages) Close() {
	if p.Key != nil {
		p.Key.Close()
	}
}

// UnitFile is the demo agent's systemd unit. It is the same in every version,
// so an upgrade changes only the binary and needs no daemon-reload (the
// packages have no maintainer scripts: whoever installs them restarts the unit).
func UnitFile(port int) []byte {
	return []byte(fmt.Sprintf(`[Unit]
Description=upkeep demo agent (the stand-in agent of upkeep's end-to-end tests)
After=network.target

[Service]
Type=simple
ExecStart=%s --listen 127.0.0.1:%d
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
`, Binary, port))
}

// Build builds the binaries, the packages and a signing key in dir. It takes
// a few seconds when Go's build cache is warm. Close the result.
func Build(ctx context.Context, dir string, o Options) (p *Packages, err error) {
	if len(o.Versions) == 0 {
		o.Versions = DefaultVersions
	}
	if o.Broken == nil {
		o.Broken = []string{BrokenVersion}
	}
	if o.Port == 0 {
		if o.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	p = &Packages{Dir: dir, Port: o.Port, Binaries: map[string]string{}, Debs: map[string]string{}, RPMs: map[string]string{}, Broken: map[string]bool{}}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	for _, v := range o.Versions {
		p.Broken[v] = slices.Contains(o.Broken, v)
		bin := filepath.Join(dir, "bin", v, "demo-agent")
		if err := BuildBinary(ctx, bin, v, p.Broken[v]); err != nil {
			return p, err
		}
		p.Binaries[v] = bin
	}
	// The key signs the .rpms and, when published, the repositories.
	if p.Key, err = repos.NewKey(ctx, dir, "demo-agent"); err != nil {
		return p, err
	}
	debDir, rpmDir := filepath.Join(dir, "deb"), filepath.Join(dir, "rpm")
	for _, d := range []string{debDir, rpmDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return p, err
		}
	}
	for _, v := range o.Versions {
		bin, err := os.ReadFile(p.Binaries[v])
		if err != nil {
			return p, err
		}
		if !o.SkipDeb {
			pkg := repos.Package{Name: Name, Version: v, Summary: "upkeep demo agent " + v, Files: payload(bin, DebUnitPath, o.Port), PostInstallSleep: o.PostInstallSleep}
			if p.Debs[v], err = repos.BuildDeb(ctx, pkg, debDir); err != nil {
				return p, fmt.Errorf("demo-agent %s .deb: %w", v, err)
			}
		}
		if !o.SkipRPM {
			pkg := repos.Package{Name: Name, Version: v, Summary: "upkeep demo agent " + v, Files: payload(bin, RPMUnitPath, o.Port), PostInstallSleep: o.PostInstallSleep}
			if p.RPMs[v], err = repos.BuildRPM(ctx, pkg, rpmDir); err != nil {
				return p, fmt.Errorf("demo-agent %s .rpm: %w", v, err)
			}
			if err := p.Key.SignRPM(ctx, p.RPMs[v]); err != nil {
				return p, fmt.Errorf("sign demo-agent %s .rpm: %w", v, err)
			}
		}
	}
	return p, nil
}

func payload(bin []byte, unitPath string, port int) []repos.File {
	return []repos.File{
		{Path: Binary, Mode: 0o755, Data: bin},
		{Path: unitPath, Mode: 0o644, Data: UnitFile(port)},
	}
}

// BuildBinary builds the demo agent at version into out, broken or not.
func BuildBinary(ctx context.Context, out, version string, broken bool) error {
	if strings.ContainsAny(version, " '\"") {
		return fmt.Errorf("demo-agent version %q: no spaces or quotes", version)
	}
	ldflags := "-s -w -X main.version=" + version
	if broken {
		ldflags += " -X main.broken=true"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // a cold build compiles net/http
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./e2e/demoagent")
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static: runs in any root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build demo-agent %s: %w\n%s", version, err, b)
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0) // .../e2e/demoagent/demopkg/demopkg.go
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(file))))
}

// freePort picks a free loopback port below Linux's ephemeral range
// (32768–60999 by default). The agent's port must stay its own while the
// agent is stopped: a port the kernel handed out for ":0" is one it hands
// out again, to any outgoing connection or listener of the machine, and a
// restarted agent that finds it taken exits and looks unhealthy.
func freePort() (int, error) {
	const lo, hi = 20000, 32000
	start := lo + rand.IntN(hi-lo)
	for i := range hi - lo {
		port := lo + (start-lo+i)%(hi-lo)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port in %d-%d", lo, hi)
}
