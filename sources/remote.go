package sources

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"upkeep.dev/upkeep/sources/netpolicy"
)

// remoteKind is how a Git remote is reached.
type remoteKind int

const (
	remoteHTTPS remoteKind = iota
	remoteHTTP             // plain HTTP, loopback only
	remoteSSH
	remoteFile
)

func (k remoteKind) String() string {
	return [...]string{"https", "http", "ssh", "file"}[k]
}

// remote is a parsed, checked Git URL.
type remote struct {
	url      string // what go-git is given; never holds credentials
	kind     remoteKind
	sshUser  string // ssh: the login, "git" unless the URL names one
	hostPort string // ssh: host:port, as known_hosts looks it up
}

// scpLike matches git's "[user@]host:path", which git recognises when a
// colon comes before any slash.
var scpLike = regexp.MustCompile(`^(?:([^@/:]+)@)?([^@/:]+):(.+)$`)

// parseRemote checks a Git URL against upkeep's transport rules: TLS or SSH
// for anything that leaves the machine, no credentials in the URL (they end
// up in logs), and no unauthenticated git:// protocol.
func parseRemote(raw string) (remote, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return remote{}, fmt.Errorf("git URL is empty: give https://, ssh://, git@host:path, file:// or a local path")
	}
	if !strings.Contains(raw, "://") {
		if m := scpLike.FindStringSubmatch(raw); m != nil && len(m[2]) > 1 { // "C:\x" is a Windows path
			return sshRemote(raw, m[1], m[2], 22)
		}
		abs, err := filepath.Abs(raw)
		if err != nil {
			return remote{}, fmt.Errorf("git URL %q: %w", raw, err)
		}
		return remote{url: abs, kind: remoteFile}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return remote{}, fmt.Errorf("git URL is not a valid URL: %v", redactParseError(err))
	}
	if u.User != nil && strings.ToLower(u.Scheme) != "ssh" {
		return remote{}, fmt.Errorf("git URL %s carries credentials: remove them and put the token in TokenFile", u.Redacted())
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Hostname() == "" {
			return remote{}, fmt.Errorf("git URL %s has no host", raw)
		}
		return remote{url: raw, kind: remoteHTTPS}, nil
	case "http":
		if !netpolicy.IsLoopback(u.Hostname()) {
			return remote{}, fmt.Errorf("git URL %s: plain http:// is only allowed to a loopback host (127.0.0.1, ::1, localhost); use https://", raw)
		}
		return remote{url: raw, kind: remoteHTTP}, nil
	case "ssh":
		if _, ok := u.User.Password(); ok {
			return remote{}, fmt.Errorf("git URL %s carries a password: remove it and use SSHKeyFile", u.Redacted())
		}
		port := 22
		if p := u.Port(); p != "" {
			if port, err = strconv.Atoi(p); err != nil {
				return remote{}, fmt.Errorf("git URL %s: bad port %q", raw, p)
			}
		}
		return sshRemote(raw, u.User.Username(), u.Hostname(), port)
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return remote{}, fmt.Errorf("git URL %s: file:// URLs name a local path (file:///path)", raw)
		}
		return remote{url: raw, kind: remoteFile}, nil
	case "git":
		return remote{}, fmt.Errorf("git URL %s: git:// is neither authenticated nor encrypted; use https:// or ssh://", raw)
	}
	return remote{}, fmt.Errorf("git URL %s: unsupported scheme %q; use https://, ssh://, git@host:path, file:// or a local path", u.Redacted(), u.Scheme)
}

func sshRemote(raw, user, host string, port int) (remote, error) {
	if host == "" {
		return remote{}, fmt.Errorf("git URL %s has no host", raw)
	}
	if user == "" {
		user = "git"
	}
	return remote{url: raw, kind: remoteSSH, sshUser: user, hostPort: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// redactParseError drops the URL from a url.Parse error: it may hold a
// password.
func redactParseError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
