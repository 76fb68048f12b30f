package sources

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ReadRevision reads the local repository that holds repoDir at rev: any
// revision go-git understands (a branch, tag, "HEAD~1", a full or short
// commit hash). The files come from the object store; the work tree and the
// index are neither read nor touched. ID is the full commit hash.
func ReadRevision(repoDir, rev string) (Revision, error) {
	repo, err := openLocal(repoDir)
	if err != nil {
		return Revision{}, err
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if errors.Is(err, io.EOF) {
		err = errors.New("the history has fewer commits than that") // from a walk past the root commit
	}
	if err != nil {
		return Revision{}, fmt.Errorf("git repository %s: revision %q: %w (give a branch, tag, commit hash or HEAD~N that exists)", repoDir, rev, err)
	}
	commit, err := repo.CommitObject(*h)
	if err != nil {
		return Revision{}, fmt.Errorf("git repository %s: revision %q: reading commit %s: %w", repoDir, rev, h, err)
	}
	return Revision{ID: commit.Hash.String(), Files: newTreeFS(repo.Storer, commit.TreeHash, commit.Committer.When)}, nil
}

// ReadWorkTree reads the work tree of the repository that holds repoDir as
// it is on disk, uncommitted edits included, leaving out .git and untracked
// files that .gitignore ignores. Files is an in-memory snapshot (bounded by
// DefaultFolderMaxBytes).
//
// The ID is honest about what Files holds: the HEAD commit hash when Files
// has exactly HEAD's paths with HEAD's content, otherwise
// "<HEAD>-dirty-<first 16 hex of the content hash>" (or
// "worktree-<16 hex>" before the first commit), so two different edits never
// share an ID. The comparison is by content, not through the index, so a
// staged change counts as a change. Symbolic links are read as the files
// they point to and so make the tree count as changed.
func ReadWorkTree(repoDir string) (Revision, error) {
	repo, err := openLocal(repoDir)
	if err != nil {
		return Revision{}, err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return Revision{}, fmt.Errorf("git repository %s: %w (a bare repository has no work tree; use ReadRevision)", repoDir, err)
	}
	root := wt.Filesystem.Root()

	var head *object.Commit
	committed := map[string]plumbing.Hash{} // blob per file path at HEAD
	dirs := map[string]bool{}               // directories at HEAD
	gitlinks := map[string]bool{}           // submodule paths at HEAD
	if ref, err := repo.Head(); err == nil {
		if head, err = repo.CommitObject(ref.Hash()); err != nil {
			return Revision{}, fmt.Errorf("git repository %s: reading HEAD commit: %w", repoDir, err)
		}
		if err := listTree(repo, head, committed, dirs, gitlinks); err != nil {
			return Revision{}, fmt.Errorf("git repository %s: reading HEAD tree: %w", repoDir, err)
		}
	} else if !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return Revision{}, fmt.Errorf("git repository %s: reading HEAD: %w", repoDir, err)
	}

	patterns, err := gitignore.ReadPatterns(wt.Filesystem, nil)
	if err != nil {
		return Revision{}, fmt.Errorf("git repository %s: reading .gitignore: %w", repoDir, err)
	}
	ignored := gitignore.NewMatcher(append(patterns, wt.Excludes...))
	skip := func(rel string, isDir bool) bool {
		if gitlinks[rel] {
			return true // another repository's files
		}
		if committed[rel] != plumbing.ZeroHash || (isDir && dirs[rel]) {
			return false // tracked content is read even when ignored
		}
		return ignored.Match(strings.Split(rel, "/"), isDir)
	}
	files, sum, err := snapshotDir(context.Background(), root, DefaultFolderMaxBytes, skip)
	if err != nil {
		return Revision{}, err
	}

	clean := head != nil
	seen := 0
	for name, n := range files.nodes {
		if n.info.IsDir() || !clean {
			continue
		}
		seen++
		want, ok := committed[name]
		clean = ok && plumbing.ComputeHash(plumbing.BlobObject, n.data) == want
	}
	clean = clean && seen == len(committed)

	short := hex.EncodeToString(sum)[:16]
	id := "worktree-" + short
	switch {
	case clean:
		id = head.Hash.String()
	case head != nil:
		id = head.Hash.String() + "-dirty-" + short
	}
	return Revision{ID: id, Files: files}, nil
}

func openLocal(repoDir string) (*git.Repository, error) {
	repo, err := git.PlainOpenWithOptions(repoDir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return nil, fmt.Errorf("%s is not inside a git repository: run git init, or use a folder source", repoDir)
		}
		return nil, fmt.Errorf("opening git repository at %s: %w", repoDir, err)
	}
	return repo, nil
}

// listTree records the files, directories and submodules of c's tree.
func listTree(repo *git.Repository, c *object.Commit, files map[string]plumbing.Hash, dirs, gitlinks map[string]bool) error {
	tree, err := repo.TreeObject(c.TreeHash)
	if err != nil {
		return err
	}
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch e.Mode {
		case filemode.Dir:
			dirs[name] = true
		case filemode.Submodule:
			gitlinks[name] = true
		default:
			files[name] = e.Hash
		}
	}
}
