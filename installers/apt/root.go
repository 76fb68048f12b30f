package apt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// InitRoot prepares an isolated apt root at root (absolute): an apt.conf that
// points apt's Dir at root, an empty dpkg database, and empty sources and
// keyring folders. Add sources with WriteSource. Nothing of the host's apt
// configuration or state is read or changed; dpkg runs maintainer scripts
// chrootless on the host, so install only packages without them.
func InitRoot(root string) error {
	if !filepath.IsAbs(root) || strings.ContainsAny(root, "\"\n;{}") {
		return fmt.Errorf("apt root %q must be an absolute path without quotes, ';' or braces", root)
	}
	for _, d := range []string{
		"etc/apt/sources.list.d", "etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d", "etc/apt/keyrings",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg/updates", "var/lib/dpkg/info",
		"var/lib/dpkg/triggers", "var/log/apt",
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	status := filepath.Join(root, "var/lib/dpkg/status")
	if _, err := os.Stat(status); os.IsNotExist(err) {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(ConfigFile(root), []byte(RootConfig(root)), 0o644)
}

// RootConfig is the apt.conf of an isolated root.
func RootConfig(root string) string {
	root = strings.TrimSuffix(root, "/")
	return fmt.Sprintf(`// upkeep isolated apt root: everything apt reads and writes is under %[1]s.
Dir "%[1]s/";
Dir::State::status "%[1]s/var/lib/dpkg/status";
// Downloads into a private folder need no _apt sandbox user.
APT::Sandbox::User "root";
DPkg::Options { "--root=%[1]s"; "--force-script-chrootless"; };
`, root)
}

// WriteSource writes a deb822 source file name.sources into root's (or the
// host's, for "") sources folder.
func WriteSource(root, name string, deb822 []byte) error {
	if strings.ContainsAny(name, "/\\") || name == "" {
		return fmt.Errorf("apt source name %q must be a plain file name", name)
	}
	return os.WriteFile(filepath.Join(SourcesDir(root), name+".sources"), deb822, 0o644)
}
