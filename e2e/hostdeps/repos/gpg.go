package repos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Key is a GPG signing key (RSA 3072, no passphrase) in its own GNUPGHOME.
// Close it to stop the gpg-agent that signing starts.
type Key struct {
	Name        string // the user ID's name
	Home        string // its GNUPGHOME
	Fingerprint string // 40 hex digits, upper case
}

// NewKey generates a key named name in a new GNUPGHOME under dir.
func NewKey(ctx context.Context, dir, name string) (*Key, error) {
	home := filepath.Join(dir, "gnupg-"+name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	k := &Key{Name: name, Home: home}
	params := fmt.Sprintf("%%no-protection\nKey-Type: RSA\nKey-Length: 3072\nKey-Usage: sign\nName-Real: upkeep test %s\nName-Email: %s@upkeep.test\nExpire-Date: 0\n%%commit\n", name, name)
	pf := filepath.Join(home, "params")
	if err := os.WriteFile(pf, []byte(params), 0o600); err != nil {
		return nil, err
	}
	if _, err := k.gpg(ctx, "--gen-key", pf); err != nil {
		k.Close()
		return nil, err
	}
	out, err := k.gpg(ctx, "--list-secret-keys", "--with-colons")
	if err != nil {
		k.Close()
		return nil, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			k.Fingerprint = f[9]
			break
		}
	}
	if len(k.Fingerprint) != 40 {
		k.Close()
		return nil, fmt.Errorf("gpg: no fingerprint for the new key %q in:\n%s", name, out)
	}
	return k, nil
}

// KeyID is the long key ID (last 16 hex digits of the fingerprint).
func (k *Key) KeyID() string { return k.Fingerprint[24:] }

func (k *Key) gpg(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{"gpg", "--batch", "--yes", "--no-tty", "--homedir", k.Home}, args...)
	return run(ctx, "", nil, argv...)
}

// Close stops the gpg-agent of the key's GNUPGHOME.
func (k *Key) Close() error {
	_, err := run(context.Background(), "", nil, "gpgconf", "--homedir", k.Home, "--kill", "all")
	return err
}

// PublicKey exports the public key, ASCII-armored or binary (for apt's Signed-By).
func (k *Key) PublicKey(ctx context.Context, armored bool) ([]byte, error) {
	args := []string{"--export"}
	if armored {
		args = append(args, "--armor")
	}
	out, err := k.gpg(ctx, append(args, k.Fingerprint)...)
	if err == nil && len(bytes.TrimSpace(out)) == 0 {
		err = fmt.Errorf("gpg --export %s: empty output", k.Fingerprint)
	}
	return out, err
}

// WritePublicKey writes the public key to path.
func (k *Key) WritePublicKey(ctx context.Context, path string, armored bool) error {
	b, err := k.PublicKey(ctx, armored)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ClearSign writes an inline-signed copy of in to out (apt's InRelease).
func (k *Key) ClearSign(ctx context.Context, in, out string) error {
	_, err := k.gpg(ctx, "--local-user", k.Fingerprint, "--digest-algo", "SHA512", "--output", out, "--clearsign", in)
	return err
}

// DetachSign writes a detached signature of in to out (Release.gpg, repomd.xml.asc).
func (k *Key) DetachSign(ctx context.Context, in, out string, armored bool) error {
	args := []string{"--local-user", k.Fingerprint, "--digest-algo", "SHA512", "--output", out}
	if armored {
		args = append(args, "--armor")
	}
	_, err := k.gpg(ctx, append(args, "--detach-sign", in)...)
	return err
}

// SignRPM adds this key's signature to the rpm at path, in place.
func (k *Key) SignRPM(ctx context.Context, path string) error {
	// __gpg: Debian has no gpg2, which rpmsign looks for by default.
	_, err := run(ctx, "", []string{"GNUPGHOME=" + k.Home},
		"rpmsign", "--define", "__gpg /usr/bin/gpg", "--define", "_gpg_name "+k.Fingerprint, "--addsign", path)
	return err
}
