package demopkg

import (
	"context"
	"fmt"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
)

// AptRepo is a signed apt repository of demo-agent .debs served on loopback.
type AptRepo struct {
	*repos.AptRepo
	Server  *repos.Server
	URL     string // http://127.0.0.1:PORT/
	Keyring []byte // the signing key's public key, binary, for Signed-By
	key     *repos.Key
}

// Source is the deb822 source for this repository, trusting only the
// keyring at keyringPath (as seen by apt, e.g. inside a container).
func (r *AptRepo) Source(keyringPath string) []byte { return r.AptSource(r.URL, keyringPath) }

// Add puts more versions into the repository and re-signs it.
func (r *AptRepo) Add(ctx context.Context, p *Packages, versions ...string) error {
	for _, v := range versions {
		deb, ok := p.Debs[v]
		if !ok {
			return fmt.Errorf("demo-agent %s: no .deb was built (built: %v)", v, keys(p.Debs))
		}
		if _, err := r.AptRepo.Add(deb); err != nil {
			return err
		}
	}
	return r.Publish(ctx, r.key)
}

// Close stops the server.
func (r *AptRepo) Close() error { return r.Server.Close() }

// ServeApt publishes the given versions (none: every built .deb) in a signed
// apt repository in dir and serves it on loopback. Close it.
func (p *Packages) ServeApt(ctx context.Context, dir string, versions ...string) (*AptRepo, error) {
	if len(versions) == 0 {
		versions = keys(p.Debs)
	}
	ar, err := repos.NewAptRepo(dir)
	if err != nil {
		return nil, err
	}
	kr, err := p.Key.PublicKey(ctx, false)
	if err != nil {
		return nil, err
	}
	r := &AptRepo{AptRepo: ar, Keyring: kr, key: p.Key}
	if err := r.Add(ctx, p, versions...); err != nil {
		return nil, err
	}
	if r.Server, err = repos.Serve(dir); err != nil {
		return nil, err
	}
	r.URL = r.Server.URL
	return r, nil
}
