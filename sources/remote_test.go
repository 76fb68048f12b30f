package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRemote(t *testing.T) {
	cwd, _ := os.Getwd()
	tests := []struct {
		scenario, url string
		kind          remoteKind
		hostPort      string
		user          string
		wantErr       string
	}{
		{scenario: "https is accepted", url: "https://github.com/acme/fleet.git", kind: remoteHTTPS},
		{scenario: "plain http to 127.0.0.1 is accepted", url: "http://127.0.0.1:8080/fleet.git", kind: remoteHTTP},
		{scenario: "plain http to ::1 is accepted", url: "http://[::1]:8080/fleet.git", kind: remoteHTTP},
		{scenario: "plain http to localhost is accepted", url: "http://localhost/fleet.git", kind: remoteHTTP},
		{scenario: "plain http to another host is refused", url: "http://git.example.com/fleet.git", wantErr: "use https://"},
		{scenario: "plain http to a LAN address is refused", url: "http://10.0.0.5/fleet.git", wantErr: "only allowed to a loopback host"},
		{scenario: "a token in the URL is refused without repeating it", url: "https://x-access-token:s3cr3t@github.com/acme/fleet.git", wantErr: "put the token in TokenFile"},
		{scenario: "git:// is refused", url: "git://github.com/acme/fleet.git", wantErr: "use https:// or ssh://"},
		{scenario: "an unknown scheme is refused", url: "ftp://example.com/fleet.git", wantErr: "unsupported scheme"},
		{scenario: "ssh:// with a port", url: "ssh://deploy@git.example.com:2222/fleet.git", kind: remoteSSH, hostPort: "git.example.com:2222", user: "deploy"},
		{scenario: "ssh:// without a user logs in as git", url: "ssh://git.example.com/fleet.git", kind: remoteSSH, hostPort: "git.example.com:22", user: "git"},
		{scenario: "a password in an ssh URL is refused", url: "ssh://git:pw@git.example.com/fleet.git", wantErr: "use SSHKeyFile"},
		{scenario: "scp-like syntax is ssh", url: "git@github.com:acme/fleet.git", kind: remoteSSH, hostPort: "github.com:22", user: "git"},
		{scenario: "file:// is local", url: "file:///srv/fleet.git", kind: remoteFile},
		{scenario: "a relative path is local", url: "repos/fleet", kind: remoteFile},
		{scenario: "a path with a colon after a slash is local", url: "./odd:name", kind: remoteFile},
		{scenario: "an empty URL is refused", url: " ", wantErr: "git URL is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			r, err := parseRemote(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), ":pw@") {
					t.Fatalf("the error repeats a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.kind != tt.kind || r.hostPort != tt.hostPort || r.sshUser != tt.user {
				t.Fatalf("got kind %v host %q user %q, want %v %q %q", r.kind, r.hostPort, r.sshUser, tt.kind, tt.hostPort, tt.user)
			}
			if r.kind == remoteFile && !strings.HasPrefix(tt.url, "file://") && r.url != filepath.Join(cwd, tt.url) {
				t.Fatalf("local path %q became %q, want it absolute", tt.url, r.url)
			}
		})
	}
}

func TestNewGitRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	key := writeSSHKey(t, dir)
	knownHosts := filepath.Join(dir, "known_hosts")
	must(t, os.WriteFile(knownHosts, nil, 0o600))
	token := filepath.Join(dir, "token")
	must(t, os.WriteFile(token, []byte("t0ken\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	must(t, os.WriteFile(empty, []byte("\n"), 0o600))

	tests := []struct {
		scenario string
		o        GitOptions
		want     string
	}{
		{"ssh without known_hosts is refused, never trusted blindly",
			GitOptions{URL: "git@github.com:acme/fleet.git", SSHKeyFile: key}, "needs KnownHostsFile"},
		{"ssh with a known_hosts file that does not exist is refused",
			GitOptions{URL: "git@github.com:acme/fleet.git", SSHKeyFile: key, KnownHostsFile: filepath.Join(dir, "nope")}, "known_hosts file"},
		{"ssh without a key is refused",
			GitOptions{URL: "ssh://git@github.com/acme/fleet.git", KnownHostsFile: knownHosts}, "needs SSHKeyFile"},
		{"ssh with a file that is not a key is refused",
			GitOptions{URL: "ssh://git@github.com/acme/fleet.git", SSHKeyFile: token, KnownHostsFile: knownHosts}, "SSH key file " + token},
		{"a token with ssh is refused",
			GitOptions{URL: "git@github.com:acme/fleet.git", SSHKeyFile: key, KnownHostsFile: knownHosts, TokenFile: token}, "TokenFile is for https"},
		{"an ssh key with https is refused",
			GitOptions{URL: "https://github.com/acme/fleet.git", SSHKeyFile: key}, "SSHKeyFile and KnownHostsFile are for ssh"},
		{"a missing token file is reported at start",
			GitOptions{URL: "https://github.com/acme/fleet.git", TokenFile: filepath.Join(dir, "missing")}, "missing"},
		{"an empty token file is reported at start",
			GitOptions{URL: "https://github.com/acme/fleet.git", TokenFile: empty}, "is empty"},
		{"credentials with a local repository are refused",
			GitOptions{URL: "/srv/fleet.git", TokenFile: token}, "do not apply"},
		{"an invalid branch name is refused",
			GitOptions{URL: "https://github.com/acme/fleet.git", Branch: "a..b"}, `branch "a..b" is not a valid`},
		{"plain http off the machine is refused",
			GitOptions{URL: "http://github.com/acme/fleet.git"}, "use https://"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			tt.o.CacheDir = t.TempDir()
			_, err := NewGit(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "t0ken") {
				t.Fatalf("the error leaks the token: %v", err)
			}
		})
	}
}
