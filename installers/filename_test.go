package installers

import (
	"errors"
	"strings"
	"testing"
)

// TestChecksumErrorNamesTheFile: whatever line the checksum rule matches,
// the error names the file that did not match.
func TestChecksumErrorNamesTheFile(t *testing.T) {
	rules := []Rule{{Name: "checksum", Reason: ErrChecksum,
		Match: []string{"Hash Sum mismatch", "File has unexpected size", "Digest verification failed", "checksum doesn't match"}}}
	tests := []struct {
		scenario string
		output   string
		want     string
	}{
		{"apt's mismatch under its Err: header gets the file from the E: summary",
			"Get:1 http://127.0.0.1:4 stable/main amd64 agent amd64 1.2.0 [1,024 B]\nErr:1 http://127.0.0.1:4 stable/main amd64 agent amd64 1.2.0\n  Hash Sum mismatch\n  Hashes of expected file:\n   - SHA256:abc\nE: Failed to fetch http://127.0.0.1:4/pool/main/agent_1.2.0_amd64.deb  Hash Sum mismatch\n   Hashes of expected file:\n",
			"Hash Sum mismatch (E: Failed to fetch http://127.0.0.1:4/pool/main/agent_1.2.0_amd64.deb  Hash Sum mismatch)"},
		{"apt's size mismatch is named the same way",
			"Err:1 http://127.0.0.1:4 stable/main amd64 agent amd64 1.2.0\n  File has unexpected size (10 != 1024). Mirror sync in progress? [IP: 127.0.0.1 4]\nE: Failed to fetch http://127.0.0.1:4/pool/main/agent_1.2.0_amd64.deb  File has unexpected size (10 != 1024).\n",
			"(E: Failed to fetch http://127.0.0.1:4/pool/main/agent_1.2.0_amd64.deb"},
		{"a line that names its file is kept as it is",
			"Digest verification failed for file 'agent-1.2.0-1.noarch.rpm'\n[/tmp/x/agent-1.2.0-1.noarch.rpm]\n",
			"Digest verification failed for file 'agent-1.2.0-1.noarch.rpm'"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			e := CommandError("install", []string{"install"}, 100, tc.output, errors.New("exit status 100"), rules)
			if !errors.Is(e, ErrChecksum) || !strings.Contains(e.Error(), tc.want) {
				t.Fatalf("error %q\nwant ErrChecksum and %q", e.Error(), tc.want)
			}
			if n := strings.Count(e.Detail, "1.2.0"); n != 1 {
				t.Errorf("detail %q names the file %d times, want once", e.Detail, n)
			}
		})
	}
}
