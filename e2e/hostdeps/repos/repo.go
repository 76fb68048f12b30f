package repos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// AptRepo is a flat apt repository with one suite and one component:
// pool/<component>/*.deb and dists/<suite>/{Release,InRelease,Release.gpg}.
type AptRepo struct {
	Dir       string
	Suite     string // "stable"
	Component string // "main"
	Arch      string // Debian architecture
}

// NewAptRepo creates an empty apt repository in dir for the host's architecture.
func NewAptRepo(dir string) (*AptRepo, error) {
	r := &AptRepo{Dir: dir, Suite: "stable", Component: "main", Arch: DebArch("")}
	if err := os.MkdirAll(r.poolDir(), 0o755); err != nil {
		return nil, err
	}
	return r, os.MkdirAll(r.binaryDir(), 0o755)
}

func (r *AptRepo) poolDir() string { return filepath.Join(r.Dir, "pool", r.Component) }
func (r *AptRepo) distDir() string { return filepath.Join(r.Dir, "dists", r.Suite) }
func (r *AptRepo) binaryDir() string {
	return filepath.Join(r.distDir(), r.Component, "binary-"+r.Arch)
}

// Add copies a .deb into the pool and returns its path there.
func (r *AptRepo) Add(debPath string) (string, error) {
	dst := filepath.Join(r.poolDir(), filepath.Base(debPath))
	return dst, copyFile(debPath, dst)
}

// Index regenerates Packages and Release (unsigned; see Sign). Old
// signatures stay until Sign replaces them, as after an unauthorised change.
func (r *AptRepo) Index(ctx context.Context) error {
	pk, err := run(ctx, r.Dir, nil, "apt-ftparchive", "packages", filepath.Join("pool", r.Component))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.binaryDir(), "Packages"), pk, 0o644); err != nil {
		return err
	}
	release := filepath.Join(r.distDir(), "Release")
	if err := os.Remove(release); err != nil && !os.IsNotExist(err) {
		return err
	}
	rel, err := run(ctx, r.Dir, nil, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin=upkeep-tests",
		"-o", "APT::FTPArchive::Release::Suite="+r.Suite,
		"-o", "APT::FTPArchive::Release::Codename="+r.Suite,
		"-o", "APT::FTPArchive::Release::Components="+r.Component,
		"-o", "APT::FTPArchive::Release::Architectures="+r.Arch,
		"release", filepath.Join("dists", r.Suite))
	if err != nil {
		return err
	}
	return os.WriteFile(release, rel, 0o644)
}

// Sign writes InRelease (clearsigned) and Release.gpg (detached) with k.
func (r *AptRepo) Sign(ctx context.Context, k *Key) error {
	release := filepath.Join(r.distDir(), "Release")
	if err := k.ClearSign(ctx, release, filepath.Join(r.distDir(), "InRelease")); err != nil {
		return err
	}
	return k.DetachSign(ctx, release, filepath.Join(r.distDir(), "Release.gpg"), true)
}

// Publish is Index then Sign.
func (r *AptRepo) Publish(ctx context.Context, k *Key) error {
	if err := r.Index(ctx); err != nil {
		return err
	}
	return r.Sign(ctx, k)
}

// AptSource is a deb822 source for the repository at url, trusting only the
// keyring at keyringPath.
func (r *AptRepo) AptSource(url, keyringPath string) []byte {
	return []byte(fmt.Sprintf("Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\nArchitectures: %s\nSigned-By: %s\n",
		url, r.Suite, r.Component, r.Arch, keyringPath))
}

// RPMRepo is an rpm-md repository: *.rpm and repodata/ with repomd.xml.asc.
type RPMRepo struct {
	Dir string
}

// NewRPMRepo creates an empty rpm-md repository in dir.
func NewRPMRepo(dir string) (*RPMRepo, error) {
	return &RPMRepo{Dir: dir}, os.MkdirAll(dir, 0o755)
}

// Add copies an .rpm into the repository and returns its path there.
func (r *RPMRepo) Add(rpmPath string) (string, error) {
	dst := filepath.Join(r.Dir, filepath.Base(rpmPath))
	return dst, copyFile(rpmPath, dst)
}

// Index regenerates repodata (unsigned; the old repomd.xml.asc stays until
// Sign replaces it).
func (r *RPMRepo) Index(ctx context.Context) error {
	_, err := run(ctx, "", nil, "createrepo_c", "--no-database", "--simple-md-filenames", "--quiet", r.Dir)
	return err
}

// Sign writes repodata/repomd.xml.asc with k.
func (r *RPMRepo) Sign(ctx context.Context, k *Key) error {
	repomd := filepath.Join(r.Dir, "repodata", "repomd.xml")
	return k.DetachSign(ctx, repomd, repomd+".asc", true)
}

// Publish is Index then Sign.
func (r *RPMRepo) Publish(ctx context.Context, k *Key) error {
	if err := r.Index(ctx); err != nil {
		return err
	}
	return r.Sign(ctx, k)
}

// RepoFile is a .repo section for dnf and zypper with package and metadata
// signature checks on. gpgKeyFile, when set, is an absolute host path named
// by gpgkey= (dnf needs it to check repomd.xml.asc); zypper reads keys from
// the rpm database instead.
func (r *RPMRepo) RepoFile(id, url, gpgKeyFile string) []byte {
	s := fmt.Sprintf("[%s]\nname=upkeep test repository %s\nbaseurl=%s\nenabled=1\nautorefresh=0\ntype=rpm-md\ngpgcheck=1\nrepo_gpgcheck=1\npkg_gpgcheck=1\n", id, id, url)
	if gpgKeyFile != "" {
		s += "gpgkey=file://" + gpgKeyFile + "\n"
	}
	return []byte(s)
}
