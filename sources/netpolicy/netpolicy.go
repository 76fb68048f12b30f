// Package netpolicy is upkeep's one rule for talking to other machines:
// HTTPS everywhere, plain HTTP only to the loopback interface. Every client
// (Git sources, the version-server and report clients, health checks, the
// OCI registry) asks it, so the rule cannot drift between them.
package netpolicy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// IsLoopback reports whether host — a name or an IP, without port; brackets
// around an IPv6 address and a trailing dot are tolerated — is "localhost"
// or an address in 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckURL accepts https:// anywhere and http:// only to a loopback host.
// Its errors say what to write instead.
func CheckURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return fmt.Errorf("plain http:// to %q is refused: use https:// (plain http is allowed only to loopback addresses)", u.Hostname())
		}
	case "":
		return errors.New("no scheme: write https://host")
	default:
		return fmt.Errorf("scheme %q is not supported: use https://", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}
