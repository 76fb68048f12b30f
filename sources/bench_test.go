package sources

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkGitFetchUpToDate measures the sync loop's steady state: a Fetch
// of a branch that has not moved (the reconciler runs one every 30 s).
func BenchmarkGitFetchUpToDate(b *testing.B) {
	for _, transport := range []string{"http", "file"} {
		b.Run(transport, func(b *testing.B) {
			r := newRemoteRepo(b, "fleet.git")
			files := map[string]string{}
			for i := range 50 {
				files["groups/g"+string(rune('a'+i%26))+string(rune('a'+i/26))+".yaml"] = "kind: Group\n"
			}
			head := r.commit("fleet", files)
			r.push("main")
			url := "file://" + r.bare
			if transport == "http" {
				url = serveGit(b, r.root, nil).URL + "/fleet.git"
			}
			src, err := NewGit(GitOptions{URL: url, Branch: "main", CacheDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := src.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rev, err := src.Fetch(ctx)
				if err != nil || rev.ID != head {
					b.Fatalf("fetch: %s, %v", rev.ID, err)
				}
			}
		})
	}
}

// BenchmarkFolderFetch measures a snapshot of a 50-file folder.
func BenchmarkFolderFetch(b *testing.B) {
	dir := b.TempDir()
	files := map[string]string{}
	for i := range 50 {
		files["groups/g"+string(rune('a'+i%26))+string(rune('a'+i/26))+".yaml"] = "kind: Group\nspec:\n  channel: stable/cloud\n"
	}
	writeFiles(b, dir, files)
	src := NewFolder(dir)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
