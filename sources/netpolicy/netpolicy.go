// Package netpolicy is upkeep's one rule for talking to other machines:
// HTTPS everywhere, plain HTTP only to the loopback interface. Every client
// (Git sources, the version-server and report clients, health checks, the
// OCI registry) asks it, so the rule cannot drift between them. It also
// gives the clients' TLS settings (ClientTLS) and says how a client words
// a failed call (TransportError), so that no client's error shows a secret.
package netpolicy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
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

// TransportError is the error of an HTTP call as a client's message shows
// it: without *url.Error's `Get "<url>":` prefix (the caller names the URL,
// redacted), saying "timed out" when it did, and with secret (a bearer
// token), when not empty, replaced by "[token]" in case a transport
// echoes a header.
func TransportError(err error, secret string) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if ue.Timeout() {
			err = fmt.Errorf("timed out: %w", ue.Err)
		} else {
			err = ue.Err
		}
	}
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[token]"))
}

// ClientTLS is the TLS configuration of upkeep's HTTP clients: TLS 1.2 at
// least, and, when caFile is not empty, only the certificates it holds (PEM)
// as roots, for a server with a private CA.
func ClientTLS(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}
