package apt

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFailedURIs(t *testing.T) {
	for _, tc := range []struct {
		scenario, out string
		want          []string
	}{
		{"an unreachable source's Err and Failed to fetch lines name it once",
			"Err:2 http://127.0.0.1:1 stable InRelease\n  Could not connect to 127.0.0.1:1 (127.0.0.1). - connect (111: Connection refused)\n" +
				"E: Failed to fetch http://127.0.0.1:1/dists/stable/InRelease  Could not connect to 127.0.0.1:1\n",
			[]string{"http://127.0.0.1:1"}},
		{"a signature failure names the source in its GPG error and repository lines",
			"W: GPG error: http://repo.example/debian stable InRelease: The following signatures couldn't be verified\n" +
				"E: The repository 'http://repo.example/debian stable InRelease' is not signed.\n",
			[]string{"http://repo.example/debian"}},
		{"sources that refreshed are not named", "Hit:1 http://good.example/debian stable InRelease\nReading package lists...\n", nil},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			if got := failedURIs(tc.out); !slices.Equal(got, tc.want) {
				t.Fatalf("failedURIs = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSourceLines(t *testing.T) {
	root := t.TempDir()
	if err := InitRoot(root); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("# comment\ndeb [signed-by=/k.gpg] http://deb.example/debian/ bookworm main\n"), 0o644)
	WriteSource(root, "vendor", []byte("Types: deb\nURIs: https://vendor.example/apt\nSuites: stable\n"))
	got := sourceLines(Config{Root: root})
	if w := filepath.Join(root, "etc/apt/sources.list") + ":2"; !slices.Equal(got["http://deb.example/debian"], []string{w}) {
		t.Errorf("one-line source: %q, want %q", got["http://deb.example/debian"], w)
	}
	if w := filepath.Join(SourcesDir(root), "vendor.sources") + ":2"; !slices.Equal(got["https://vendor.example/apt"], []string{w}) {
		t.Errorf("deb822 source: %q, want %q", got["https://vendor.example/apt"], w)
	}
}
