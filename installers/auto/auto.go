// Package auto picks the Installer for the running host: from
// /etc/os-release (ID, then ID_LIKE) and which package manager binaries are
// on PATH, in that order.
package auto

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/apt"
	"upkeep.dev/upkeep/installers/dnf"
	"upkeep.dev/upkeep/installers/zypper"
)

// Kinds of installers.
const (
	Apt    = "apt"
	Dnf    = "dnf"
	Yum    = "yum"
	Zypper = "zypper"
)

// families maps os-release IDs to a package manager family.
var families = map[string]string{
	"debian": Apt, "ubuntu": Apt, "raspbian": Apt, "linuxmint": Apt, "pop": Apt,
	"fedora": Dnf, "rhel": Dnf, "centos": Dnf, "rocky": Dnf, "almalinux": Dnf, "amzn": Dnf, "ol": Dnf, "redhat": Dnf,
	"opensuse": Zypper, "opensuse-leap": Zypper, "opensuse-tumbleweed": Zypper, "sles": Zypper, "sled": Zypper, "suse": Zypper,
}

// binaries each kind needs on PATH.
var binaries = map[string][]string{
	Apt:    {"apt-get", "apt-cache", "dpkg-query"},
	Dnf:    {"dnf", "rpm"},
	Yum:    {"yum", "rpm"},
	Zypper: {"zypper", "rpm"},
}

// Choice is the detected kind and why.
type Choice struct {
	Kind   string
	Reason string
}

// Choose decides the installer kind from os-release fields and a PATH
// lookup. Rules, first match wins: the os-release ID's family, then each
// ID_LIKE entry's family (for the dnf family: dnf, else yum), then the
// first package manager found on PATH (apt, zypper, dnf, yum).
func Choose(osRelease map[string]string, have func(bin string) bool) (Choice, error) {
	haveAll := func(kind string) bool {
		for _, b := range binaries[kind] {
			if !have(b) {
				return false
			}
		}
		return true
	}
	pick := func(family, why string) (Choice, error) {
		kinds := []string{family}
		if family == Dnf {
			kinds = []string{Dnf, Yum}
		}
		for _, k := range kinds {
			if haveAll(k) {
				return Choice{Kind: k, Reason: why}, nil
			}
		}
		var need []string
		for _, k := range kinds {
			need = append(need, strings.Join(binaries[k], "+"))
		}
		return Choice{}, fmt.Errorf("%s, but %s is not on PATH: install the package manager or set the installer explicitly", why, strings.Join(need, " or "))
	}
	ids := []struct{ field, id string }{{"ID", osRelease["ID"]}}
	for _, like := range strings.Fields(osRelease["ID_LIKE"]) {
		ids = append(ids, struct{ field, id string }{"ID_LIKE", like})
	}
	for _, x := range ids {
		if fam, ok := families[strings.ToLower(x.id)]; ok {
			return pick(fam, fmt.Sprintf("/etc/os-release %s=%s belongs to the %s family", x.field, x.id, fam))
		}
	}
	for _, k := range []string{Apt, Zypper, Dnf, Yum} {
		if haveAll(k) {
			return Choice{Kind: k, Reason: fmt.Sprintf("os-release names no known distribution (ID=%q); %s is on PATH", osRelease["ID"], k)}, nil
		}
	}
	return Choice{}, fmt.Errorf("no supported package manager: os-release ID=%q ID_LIKE=%q and none of apt-get, zypper, dnf, yum is on PATH", osRelease["ID"], osRelease["ID_LIKE"])
}

// ParseOSRelease reads os-release(5) KEY=value lines (values may be quoted).
func ParseOSRelease(data []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		m[k] = v
	}
	return m
}

// New returns the host Installer of a kind.
func New(kind string) (installers.Installer, error) {
	switch kind {
	case Apt:
		return apt.New(apt.Config{}), nil
	case Dnf, Yum:
		return dnf.New(dnf.Config{Binary: kind}), nil
	case Zypper:
		return zypper.New(zypper.Config{}), nil
	}
	return nil, fmt.Errorf("unknown installer %q: want apt, dnf, yum or zypper", kind)
}

// Detect picks the Installer for this host.
func Detect() (installers.Installer, Choice, error) {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		data, _ = os.ReadFile("/usr/lib/os-release")
	}
	c, err := Choose(ParseOSRelease(data), func(b string) bool { _, err := exec.LookPath(b); return err == nil })
	if err != nil {
		return nil, c, err
	}
	i, err := New(c.Kind)
	return i, c, err
}
