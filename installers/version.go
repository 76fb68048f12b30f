package installers

import (
	"fmt"
	"sort"
	"strings"
)

// MatchVersion picks the package version that is the requested version from
// the versions a repository offers; it never guesses a version that is not
// offered.
//
// want is an exact package version (returned as is when offered) or a release
// version: "1.2.3" or "v1.2.3" matches any package version whose upstream
// part is 1.2.3 (epoch and revision/release ignored), a semver prerelease
// "1.2.3-rc.1" also matches the packaging form "1.2.3~rc.1". When several
// builds match (1.2.3-1, 1.2.3-2) the newest by compare wins.
func MatchVersion(want string, available []string, compare func(a, b string) int) (string, error) {
	want = strings.TrimSpace(want)
	if want == "" {
		return "", fmt.Errorf("%w: no version requested", ErrNotAvailable)
	}
	for _, v := range available {
		if v == want {
			return v, nil
		}
	}
	release := strings.TrimPrefix(want, "v")
	forms := []string{release}
	if core, pre, ok := strings.Cut(release, "-"); ok {
		forms = append(forms, core+"~"+pre)
	}
	var matches []string
	for _, v := range available {
		up := UpstreamVersion(v)
		for _, f := range forms {
			if up == f {
				matches = append(matches, v)
				break
			}
		}
	}
	if len(matches) == 0 {
		offered := "none"
		if len(available) > 0 {
			offered = strings.Join(available, ", ")
		}
		return "", fmt.Errorf("%w: %s is not offered by any configured repository (offered: %s)", ErrNotAvailable, want, offered)
	}
	sort.SliceStable(matches, func(i, j int) bool { return compare(matches[i], matches[j]) > 0 })
	return matches[0], nil
}

// UpstreamVersion strips the epoch ("1:") and the packaging revision or
// release (the part after the last "-") from a package version:
// "1:1.2.3-1.el9" → "1.2.3". A version without "-" is returned whole.
func UpstreamVersion(pkgVersion string) string {
	v := pkgVersion
	if i := strings.IndexByte(v, ':'); i >= 0 && isDigits(v[:i]) {
		v = v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v = v[:i]
	}
	return v
}

// ReleaseVersion is the semver form of a package version, for comparing with
// a version server's answer: "1.2.3~rc.1-1" → "1.2.3-rc.1".
func ReleaseVersion(pkgVersion string) string {
	return strings.Replace(UpstreamVersion(pkgVersion), "~", "-", 1)
}

// SortNewestFirst sorts versions newest first and drops duplicates.
func SortNewestFirst(versions []string, compare func(a, b string) int) []string {
	sort.SliceStable(versions, func(i, j int) bool { return compare(versions[i], versions[j]) > 0 })
	out := versions[:0]
	for i, v := range versions {
		if i == 0 || v != versions[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
