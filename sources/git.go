package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

const (
	// DefaultGitTimeout bounds one Fetch.
	DefaultGitTimeout = 60 * time.Second
	// DefaultMaxFetchBytes bounds what one fetch over HTTP(S) downloads.
	DefaultMaxFetchBytes int64 = 256 << 20
	// remoteName is the name of the one remote of a cache repository.
	remoteName = "origin"
	// defaultBranch is used when the remote does not say which branch its
	// HEAD is.
	defaultBranch = "main"
)

// GitOptions configures NewGit.
type GitOptions struct {
	// URL of the repository: https://host/path, http://127.0.0.1/path
	// (loopback only), ssh://[user@]host[:port]/path, [user@]host:path,
	// file:///path or a local path.
	URL string
	// Branch to follow. Empty means the branch the remote's HEAD names
	// (asked once per process), else "main".
	Branch string
	// CacheDir holds one bare clone per URL and branch, kept across
	// restarts. Empty means <user cache dir>/upkeep/git.
	CacheDir string
	// TokenFile (https and http only) holds an access token, read again at
	// every fetch so it can be rotated in place. It is sent as HTTP basic
	// auth, user "x-access-token", which GitHub and GitLab accept.
	TokenFile string
	// SSHKeyFile (ssh only, required) is an unencrypted private key.
	SSHKeyFile string
	// KnownHostsFile (ssh only, required) lists the server's host keys.
	// Host keys are always checked.
	KnownHostsFile string
	// Timeout bounds one Fetch; zero means DefaultGitTimeout.
	Timeout time.Duration
	// MaxFetchBytes bounds the bytes one HTTP(S) fetch downloads; zero means
	// DefaultMaxFetchBytes. (SSH and local fetches are bounded by Timeout
	// only.)
	MaxFetchBytes int64
	// Logger receives clone and new-commit events; nil means slog.Default().
	Logger *slog.Logger
}

// NewGit returns a Source that follows a branch of a Git repository. The
// first Fetch clones into the cache (or reuses a clone from before a
// restart); every Fetch then fetches the branch (force-pushes included),
// and returns its commit (ID: the full hash) with the commit's tree read
// straight from the object store; nothing is checked out.
//
// The options are checked now, so that a wrong URL or a missing key file is
// reported at start-up rather than at the first sync.
func NewGit(o GitOptions) (Source, error) {
	r, err := parseRemote(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Branch != "" {
		if err := plumbing.NewBranchReferenceName(o.Branch).Validate(); err != nil {
			return nil, fmt.Errorf("git branch %q is not a valid branch name", o.Branch)
		}
	}
	if err := checkCredentialOptions(r, o); err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultGitTimeout
	}
	if o.MaxFetchBytes <= 0 {
		o.MaxFetchBytes = DefaultMaxFetchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("git cache: %w; set CacheDir", err)
		}
		o.CacheDir = filepath.Join(base, "upkeep", "git")
	}
	cacheDir, err := filepath.Abs(o.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("git cache %s: %w", o.CacheDir, err)
	}
	key := sha256.Sum256([]byte(r.url + "\n" + o.Branch))
	dir := filepath.Join(cacheDir, hex.EncodeToString(key[:]))
	if r.kind == remoteHTTPS || r.kind == remoteHTTP {
		installGuardedHTTP()
	}
	g := &gitSource{o: o, remote: r, dir: dir, cache: cacheFor(dir), branch: o.Branch}
	g.log = o.Logger.With("source", g.String())
	return g, nil
}

// checkCredentialOptions refuses credentials that do not fit the transport
// and, for SSH, missing key or known_hosts files.
func checkCredentialOptions(r remote, o GitOptions) error {
	switch r.kind {
	case remoteHTTPS, remoteHTTP:
		if o.SSHKeyFile != "" || o.KnownHostsFile != "" {
			return fmt.Errorf("git URL %s: SSHKeyFile and KnownHostsFile are for ssh URLs; use TokenFile with %s", r.url, r.kind)
		}
		if o.TokenFile != "" {
			if _, err := readToken(o.TokenFile); err != nil {
				return err
			}
		}
	case remoteSSH:
		if o.TokenFile != "" {
			return fmt.Errorf("git URL %s: TokenFile is for https URLs; ssh uses SSHKeyFile", r.url)
		}
		if _, err := newSSHAuth(r, o); err != nil {
			return err
		}
	case remoteFile:
		if o.TokenFile != "" || o.SSHKeyFile != "" || o.KnownHostsFile != "" {
			return fmt.Errorf("git URL %s is a local repository: TokenFile, SSHKeyFile and KnownHostsFile do not apply", r.url)
		}
	}
	return nil
}

type gitSource struct {
	o      GitOptions
	remote remote
	dir    string
	log    *slog.Logger
	cache  *repoCache
	branch string // o.Branch, or the remote's default once known; guarded by cache.sem
}

// repoCache is the process's single handle on one cache directory, shared
// by every Source that maps to it, because go-git's storage is neither safe
// for concurrent use nor aware of packs another handle writes.
type repoCache struct {
	// sem admits one fetch at a time. A fetch that outlives its caller's
	// deadline keeps it until the transport gives up, so later fetches
	// report the hang instead of piling up.
	sem  chan struct{}
	repo *git.Repository // opened by the first fetch
	last Revision        // newest revision built, reused while the branch stays
}

var (
	cachesMu sync.Mutex
	caches   = map[string]*repoCache{}
)

func cacheFor(dir string) *repoCache {
	cachesMu.Lock()
	defer cachesMu.Unlock()
	c, ok := caches[dir]
	if !ok {
		c = &repoCache{sem: make(chan struct{}, 1)}
		caches[dir] = c
	}
	return c
}

func (g *gitSource) String() string {
	if g.o.Branch == "" {
		return "git " + g.remote.url
	}
	return "git " + g.remote.url + " branch " + g.o.Branch
}

func (g *gitSource) Fetch(ctx context.Context) (Revision, error) {
	ctx, cancel := context.WithTimeout(ctx, g.o.Timeout)
	defer cancel()
	select {
	case g.cache.sem <- struct{}{}:
	case <-ctx.Done():
		return Revision{}, fmt.Errorf("%s: an earlier fetch is still running after its timeout (the remote is not answering): %w", g, ctx.Err())
	}
	type result struct {
		rev Revision
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-g.cache.sem }()
		rev, err := g.fetchLocked(ctx)
		done <- result{rev, err}
	}()
	// Not every transport step honours the context (an SSH handshake does
	// not), so wait for whichever comes first.
	select {
	case r := <-done:
		return r.rev, r.err
	case <-ctx.Done():
		select {
		case r := <-done:
			return r.rev, r.err
		default:
		}
		return Revision{}, g.describe(ctx.Err(), "")
	}
}

// fetchLocked runs with cache.sem held.
func (g *gitSource) fetchLocked(ctx context.Context) (Revision, error) {
	repo, err := g.openCache()
	if err != nil {
		return Revision{}, err
	}
	auth, err := g.auth()
	if err != nil {
		return Revision{}, err
	}
	ctx = withFetchGuard(ctx, g.o.MaxFetchBytes)
	if g.branch == "" {
		if g.branch, err = g.remoteDefaultBranch(ctx, repo, auth); err != nil {
			return Revision{}, err
		}
	}
	branch := g.branch
	spec := config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/%s/%s", branch, remoteName, branch))
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true, // follow force-pushes
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return Revision{}, g.describe(err, branch)
	}
	ref, err := repo.Reference(plumbing.NewRemoteReferenceName(remoteName, branch), true)
	if err != nil {
		return Revision{}, fmt.Errorf("%s: branch %q was fetched but its ref is missing from the cache %s: %w (delete the cache directory to re-clone)", g, branch, g.dir, err)
	}
	if last := g.cache.last; last.ID == ref.Hash().String() {
		g.log.Debug("git branch unchanged", "commit", last.ID)
		return last, nil
	}
	rev, err := g.readCommit(ref.Hash())
	if err != nil {
		return Revision{}, err
	}
	g.log.Info("git branch moved", "branch", branch, "commit", rev.ID, "previous", g.cache.last.ID)
	if tf, ok := rev.Files.(*treeFS); ok {
		if subs, _ := tf.submodules(10); len(subs) > 0 {
			g.log.Warn("git submodules are not read: their files belong to another repository; copy what the fleet needs into this one",
				"commit", rev.ID, "submodules", subs)
		}
	}
	g.cache.last = rev
	return rev, nil
}

// readCommit returns the revision of commit h. Its files are read through a
// storage handle of their own, so that reading them never waits for (or
// races with) a later fetch writing to the cache. Objects are immutable and
// the cache is never pruned, so the revision stays readable.
func (g *gitSource) readCommit(h plumbing.Hash) (Revision, error) {
	st := filesystem.NewStorage(osfs.New(g.dir), cache.NewObjectLRU(16*cache.MiByte))
	commit, err := object.GetCommit(st, h)
	if err != nil {
		return Revision{}, fmt.Errorf("%s: reading commit %s from the cache %s: %w", g, h, g.dir, err)
	}
	files := newTreeFS(st, commit.TreeHash, commit.Committer.When)
	// Read the root now, while no fetch can add packs: this loads the pack
	// indexes the handle will use, and fails early on a broken cache.
	if _, err := files.ReadDir("."); err != nil {
		return Revision{}, fmt.Errorf("%s: reading commit %s from the cache %s: %w", g, h, g.dir, err)
	}
	return Revision{ID: h.String(), Files: files}, nil
}

// openCache opens the bare clone in g.dir, creating it the first time and
// re-creating it when it is unreadable. Runs with cache.sem held.
func (g *gitSource) openCache() (*git.Repository, error) {
	if g.cache.repo != nil {
		return g.cache.repo, nil
	}
	repo, err := git.PlainOpen(g.dir)
	switch {
	case err == nil:
		g.log.Debug("git cache reused", "dir", g.dir)
	case errors.Is(err, git.ErrRepositoryNotExists):
		if repo, err = g.initCache(); err != nil {
			return nil, err
		}
	default:
		g.log.Warn("git cache unreadable, cloning again", "dir", g.dir, "err", err)
		if err := os.RemoveAll(g.dir); err != nil {
			return nil, fmt.Errorf("%s: removing the broken cache %s: %w", g, g.dir, err)
		}
		if repo, err = g.initCache(); err != nil {
			return nil, err
		}
	}
	rem, err := repo.Remote(remoteName)
	if err != nil || len(rem.Config().URLs) != 1 || rem.Config().URLs[0] != g.remote.url {
		// Only a half-made cache gets here: the directory name is a hash of the URL.
		_ = repo.DeleteRemote(remoteName)
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{g.remote.url}}); err != nil {
			return nil, fmt.Errorf("%s: configuring the cache %s: %w", g, g.dir, err)
		}
	}
	g.cache.repo = repo
	return repo, nil
}

func (g *gitSource) initCache() (*git.Repository, error) {
	g.log.Info("git cache created", "dir", g.dir)
	// The cache may hold a private repository: keep it to this user.
	if err := os.MkdirAll(filepath.Dir(g.dir), 0o700); err != nil {
		return nil, fmt.Errorf("%s: creating the cache directory: %w (set CacheDir to a writable directory)", g, err)
	}
	repo, err := git.PlainInit(g.dir, true)
	if err != nil {
		return nil, fmt.Errorf("%s: creating the cache %s: %w", g, g.dir, err)
	}
	return repo, nil
}

// remoteDefaultBranch asks the remote which branch its HEAD names.
func (g *gitSource) remoteDefaultBranch(ctx context.Context, repo *git.Repository, auth transport.AuthMethod) (string, error) {
	rem, err := repo.Remote(remoteName)
	if err != nil {
		return "", fmt.Errorf("%s: %w", g, err)
	}
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return defaultBranch, nil
	}
	if err != nil {
		return "", g.describe(err, "")
	}
	for _, ref := range refs {
		if ref.Name() == plumbing.HEAD && ref.Type() == plumbing.SymbolicReference && ref.Target().IsBranch() {
			return ref.Target().Short(), nil
		}
	}
	return defaultBranch, nil
}

// describe turns a transport error into one that says what to do next. It
// never includes credentials: URLs carry none, and auth methods are not
// printed.
func (g *gitSource) describe(err error, branch string) error {
	var noRef git.NoMatchingRefSpecError
	var tooLarge *fetchTooLargeError
	hint := ""
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within %s: check that the server is reachable (network, firewall, proxy), or raise the timeout: %w", g, g.o.Timeout, err)
	case errors.As(err, &noRef):
		return fmt.Errorf("%s: branch %q not found on the remote: check the branch name, or push the branch", g, branch)
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%s: %w", g, tooLarge)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		hint = fmt.Sprintf("push a first commit to branch %q", branch)
	case errors.Is(err, transport.ErrAuthenticationRequired):
		hint = "set TokenFile to a token that may read the repository"
		if g.o.TokenFile != "" {
			hint = fmt.Sprintf("the token in %s was refused: check it is valid and may read the repository", g.o.TokenFile)
		}
	case errors.Is(err, transport.ErrAuthorizationFailed):
		hint = fmt.Sprintf("the token in %s may not read this repository", g.o.TokenFile)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		hint = "check the URL (without valid credentials a private repository also looks missing)"
	}
	if h := sshHint(err, g.remote, g.o.KnownHostsFile); h != "" {
		hint = h
	}
	if hint == "" && branch == "" {
		return fmt.Errorf("%s: asking the remote for its branches: %w", g, err)
	}
	if hint == "" {
		return fmt.Errorf("%s: fetching branch %q: %w", g, branch, err)
	}
	return &hintError{source: g.String(), err: err, hint: hint}
}

// hintError is a transport error with the next step to take.
type hintError struct {
	source string
	err    error
	hint   string
}

func (e *hintError) Error() string {
	// go-git's errors can end in ": " with nothing after it, or carry the
	// server's reply over several lines.
	msg := strings.TrimRight(strings.Join(strings.Fields(e.err.Error()), " "), ":")
	return e.source + ": " + msg + ": " + e.hint
}

func (e *hintError) Unwrap() error { return e.err }

// auth reads the credentials afresh, so a rotated token or key is used at
// the next fetch without a restart.
func (g *gitSource) auth() (transport.AuthMethod, error) {
	switch g.remote.kind {
	case remoteHTTPS, remoteHTTP:
		if g.o.TokenFile == "" {
			return nil, nil
		}
		token, err := readToken(g.o.TokenFile)
		if err != nil {
			return nil, err
		}
		return tokenAuth(token), nil
	case remoteSSH:
		return newSSHAuth(g.remote, g.o)
	}
	return nil, nil
}

// maxTokenBytes bounds a token file; real tokens are well under 1 KiB.
const maxTokenBytes = 16 << 10

func readToken(file string) (string, error) {
	data, err := readBounded(file, maxTokenBytes)
	switch {
	case errors.Is(err, errTooBig):
		return "", fmt.Errorf("token file %s is larger than %d bytes: it should hold only the token", file, maxTokenBytes)
	case err != nil:
		return "", fmt.Errorf("reading token file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty: write the access token into it", file)
	}
	if strings.ContainsAny(token, "\r\n") {
		return "", fmt.Errorf("token file %s has more than one line: it should hold only the token", file)
	}
	return token, nil
}
