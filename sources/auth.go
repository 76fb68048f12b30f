package sources

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// tokenUser is the basic-auth user that GitHub ("x-access-token") and
// GitLab (any user) accept with an access token as the password.
const tokenUser = "x-access-token"

func tokenAuth(token string) *githttp.BasicAuth {
	return &githttp.BasicAuth{Username: tokenUser, Password: token}
}

// sshAuth logs in with one private key and checks the server against a
// known_hosts file. It implements go-git's ssh.AuthMethod.
type sshAuth struct {
	user        string
	signer      gossh.Signer
	hostKeys    gossh.HostKeyCallback
	algorithms  []string
	dialTimeout time.Duration
}

var _ gitssh.AuthMethod = (*sshAuth)(nil)

func (a *sshAuth) Name() string   { return "ssh-public-keys" }
func (a *sshAuth) String() string { return "ssh key for user " + a.user }

func (a *sshAuth) ClientConfig() (*gossh.ClientConfig, error) {
	return &gossh.ClientConfig{
		User:              a.user,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(a.signer)},
		HostKeyCallback:   a.hostKeys,
		HostKeyAlgorithms: a.algorithms,
		Timeout:           a.dialTimeout,
	}, nil
}

// maxKeyFileBytes bounds the key and known_hosts files read.
const maxKeyFileBytes = 1 << 20

func newSSHAuth(r remote, o GitOptions) (*sshAuth, error) {
	if o.SSHKeyFile == "" {
		return nil, fmt.Errorf("git URL %s needs SSHKeyFile: a private key the server accepts for user %q", r.url, r.sshUser)
	}
	if o.KnownHostsFile == "" {
		return nil, fmt.Errorf("git URL %s needs KnownHostsFile: a known_hosts file with the host key of %s (get it with ssh-keyscan and check its fingerprint out of band); host keys are never skipped", r.url, r.hostPort)
	}
	pem, err := readBounded(o.SSHKeyFile, maxKeyFileBytes)
	if err != nil {
		return nil, fmt.Errorf("reading SSH key file: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	var missing *gossh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("SSH key file %s is protected by a passphrase: give upkeep a key without one (readable only by upkeep)", o.SSHKeyFile)
	case err != nil:
		return nil, fmt.Errorf("SSH key file %s: %w", o.SSHKeyFile, err)
	}
	if _, err := os.Stat(o.KnownHostsFile); err != nil {
		return nil, fmt.Errorf("known_hosts file: %w (it must list the host key of %s)", err, r.hostPort)
	}
	db, err := gitssh.NewKnownHostsDb(o.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("known_hosts file %s: %w", o.KnownHostsFile, err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultGitTimeout
	}
	return &sshAuth{
		user:        r.sshUser,
		signer:      signer,
		hostKeys:    db.HostKeyCallback(),
		algorithms:  db.HostKeyAlgorithms(r.hostPort),
		dialTimeout: timeout,
	}, nil
}

// sshHint explains a failed host key check; "" for other errors.
func sshHint(err error, r remote, knownHosts string) string {
	if r.kind != remoteSSH {
		return ""
	}
	var keyErr *knownhosts.KeyError
	switch {
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		return fmt.Sprintf("the host key of %s does NOT match %s: the server changed its key or the connection is intercepted; verify the new key out of band before updating the file", r.hostPort, knownHosts)
	case errors.As(err, &keyErr) || strings.Contains(err.Error(), "key is unknown"):
		return fmt.Sprintf("the host key of %s is not in %s: add it (ssh-keyscan, then check the fingerprint out of band)", r.hostPort, knownHosts)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Sprintf("the server refused the key in SSHKeyFile for user %q: add its public key to the repository's deploy keys", r.sshUser)
	}
	return ""
}
