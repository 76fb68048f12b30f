package sources

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// writeSSHKey writes a new unencrypted ed25519 private key in OpenSSH
// format and returns its path.
func writeSSHKey(t testing.TB, dir string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sshGitServer is a real SSH server on 127.0.0.1 that runs git-upload-pack
// for one authorised key, like a Git host's deploy key.
type sshGitServer struct {
	addr    string
	hostKey gossh.PublicKey
}

func startSSHGitServer(t *testing.T, root string, authorized gossh.PublicKey) *sshGitServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	hostSigner, err := gossh.NewSignerFromKey(hostPriv)
	must(t, err)
	cfg := &gossh.ServerConfig{
		PublicKeyCallback: func(_ gossh.ConnMetadata, k gossh.PublicKey) (*gossh.Permissions, error) {
			if bytes.Equal(k.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorised")
		},
	}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSSHConn(conn, cfg, root)
		}
	}()
	return &sshGitServer{addr: ln.Addr().String(), hostKey: hostSigner.PublicKey()}
}

func serveSSHConn(conn net.Conn, cfg *gossh.ServerConfig, root string) {
	defer conn.Close()
	_, chans, reqs, err := gossh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(gossh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSSHSession(ch, chReqs, root)
	}
}

func serveSSHSession(ch gossh.Channel, reqs <-chan *gossh.Request, root string) {
	defer ch.Close()
	for req := range reqs {
		var exec struct{ Command string }
		if req.Type != "exec" || gossh.Unmarshal(req.Payload, &exec) != nil {
			req.Reply(false, nil)
			continue
		}
		// go-git sends: git-upload-pack '/fleet.git'
		name, arg, _ := strings.Cut(exec.Command, " ")
		if name != "git-upload-pack" {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		status := runUploadPack(ch, filepath.Join(root, strings.Trim(arg, "'")))
		ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

func runUploadPack(ch gossh.Channel, repo string) uint32 {
	cmd := exec.Command("git", "upload-pack", repo)
	cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 1
	}
	go func() { io.Copy(stdin, ch); stdin.Close() }()
	if cmd.Run() != nil {
		return 1
	}
	return 0
}

func TestGitSSH(t *testing.T) {
	r := newRemoteRepo(t, "fleet.git")
	head := r.commit("first", map[string]string{"a.yaml": "a\n"})
	r.push("main")

	dir := t.TempDir()
	keyFile := writeSSHKey(t, dir)
	pemBytes, err := os.ReadFile(keyFile)
	must(t, err)
	signer, err := gossh.ParsePrivateKey(pemBytes)
	must(t, err)
	srv := startSSHGitServer(t, r.root, signer.PublicKey())
	other := startSSHGitServer(t, r.root, signer.PublicKey()) // same address book entry, different host key

	writeKnownHosts := func(name string, key gossh.PublicKey) string {
		p := filepath.Join(dir, name)
		line := knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, key)
		must(t, os.WriteFile(p, []byte(line+"\n"), 0o600))
		return p
	}
	trusted := writeKnownHosts("known_hosts", srv.hostKey)
	wrongKey := writeKnownHosts("known_hosts_wrong", other.hostKey)
	unrelated := filepath.Join(dir, "known_hosts_unrelated")
	must(t, os.WriteFile(unrelated, []byte(knownhosts.Line([]string{"[git.example.com]:22"}, srv.hostKey)+"\n"), 0o600))
	strangerKey := writeSSHKey(t, t.TempDir())

	url := "ssh://git@" + srv.addr + "/fleet.git"
	src := newTestGit(t, GitOptions{URL: url, Branch: "main", SSHKeyFile: keyFile, KnownHostsFile: trusted})
	if rev := fetch(t, src); rev.ID != head || readString(t, rev.Files, "a.yaml") != "a\n" {
		t.Fatalf("ssh fetch: ID %s, want %s", rev.ID, head)
	}

	tests := []struct {
		scenario   string
		key, hosts string
		want       string
	}{
		{"a host key that differs from known_hosts is refused", keyFile, wrongKey, "does NOT match"},
		{"a host missing from known_hosts is refused", keyFile, unrelated, "is not in"},
		{"a key the server does not know is reported", strangerKey, trusted, "refused the key"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			src := newTestGit(t, GitOptions{URL: url, Branch: "main", SSHKeyFile: tt.key, KnownHostsFile: tt.hosts})
			_, err := src.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			t.Logf("error: %v", err)
		})
	}
}

// TestGitSSHHangingServer: an SSH handshake does not honour go-git's
// context, so a server that accepts and then says nothing must still not
// hold Fetch past its timeout, and later fetches must say why they wait.
func TestGitSSHHangingServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })

	dir := t.TempDir()
	hosts := filepath.Join(dir, "known_hosts")
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := gossh.NewPublicKey(hostPriv.Public())
	must(t, err)
	must(t, os.WriteFile(hosts, []byte(knownhosts.Line([]string{knownhosts.Normalize(ln.Addr().String())}, hostKey)+"\n"), 0o600))
	src := newTestGit(t, GitOptions{
		URL: "ssh://git@" + ln.Addr().String() + "/fleet.git", Branch: "main",
		SSHKeyFile: writeSSHKey(t, dir), KnownHostsFile: hosts, Timeout: 300 * time.Millisecond,
	})

	start := time.Now()
	_, err = src.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("first fetch: got %v, want a timeout", err)
	}
	_, err = src.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "an earlier fetch is still running") {
		t.Fatalf("second fetch: got %v, want it to report the hanging fetch", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("two fetches took %s, want each bounded by the 300ms timeout", took)
	}

	// Once the server hangs up, fetches run again (and fail on their own terms).
	(<-accepted).Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = src.Fetch(context.Background())
		if err != nil && !strings.Contains(err.Error(), "an earlier fetch is still running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned fetch never released the cache: %v", err)
		}
	}
	for len(accepted) > 0 {
		(<-accepted).Close()
	}
}
