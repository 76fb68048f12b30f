package spec

import "fmt"

// MaxNameLength bounds every name of a fleet repository: control planes,
// channels (all segments and slashes together), groups and freezes (limit
// name-length). Names travel in URL paths and query strings, HTTP headers,
// Kubernetes annotations (values, not keys: installers/kube writes them
// into no label value and no object name), the version server's reports and
// leases, and the updaters' state; 253 bytes is the limit of a Kubernetes
// object name (a DNS-1123 subdomain), so any name fits wherever those do.
// The loader, the version server's routes, the report and lease APIs and
// the clients all use this one limit and ValidName's rules, so a name the
// loader accepts is accepted everywhere.
const MaxNameLength = 253

// ValidName reports whether s is a name of the fleet repository: at most
// MaxNameLength bytes of segments [a-z0-9]([a-z0-9.-]*[a-z0-9])?, one
// segment for a group, control plane or freeze, one or more joined by "/"
// for a channel.
func ValidName(s string, channel bool) bool {
	return NameProblem(s, channel) == ""
}

// NameProblem says why s is not a valid name (see ValidName), or "" when it is.
func NameProblem(s string, channel bool) string {
	if s == "" {
		return "empty"
	}
	if len(s) > MaxNameLength {
		return fmt.Sprintf("%d bytes, over the %d allowed (limit name-length)", len(s), MaxNameLength)
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			if c := s[i]; !(isLowerAlnum(c) || c == '.' || c == '-') {
				return badSyntax(channel)
			}
			continue
		}
		if i < len(s) && !channel {
			return badSyntax(channel)
		}
		if seg := s[start:i]; seg == "" || !isLowerAlnum(seg[0]) || !isLowerAlnum(seg[len(seg)-1]) {
			return badSyntax(channel)
		}
		start = i + 1
	}
	return ""
}

func badSyntax(channel bool) string {
	if channel {
		return "not a channel name: segments of lower-case letters, digits, '.' and '-', each starting and ending with a letter or digit, joined by '/', such as stable/cloud"
	}
	return "not a group name: lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// checkNameLength refuses a name at path longer than MaxNameLength; the
// schema has checked its characters.
func (ck *checker) checkNameLength(d *document, path string) bool {
	s, ok := d.str(path)
	if !ok || len(s) <= MaxNameLength {
		return true
	}
	return ck.fail(d, path, fmt.Sprintf(
		"name of %d bytes is longer than %d (limit name-length): names travel in URLs, headers, Kubernetes annotations and reports; shorten it",
		len(s), MaxNameLength))
}
