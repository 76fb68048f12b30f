package run

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	tests := []struct {
		scenario string
		cmd      Cmd
		wantErr  string
		wantExit int
		wantOut  string
	}{
		{"a successful command returns its output and exit 0",
			Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2"}}, "", 0, "out\nerr\n"},
		{"a failing command returns an error naming the status",
			Cmd{Argv: []string{"sh", "-c", "echo boom; exit 3"}}, "sh exited with status 3", 3, "boom\n"},
		{"a missing binary says it could not start",
			Cmd{Argv: []string{"/nonexistent/upkeep-tool"}}, "could not start", -1, ""},
		{"a command past its timeout is killed with its children",
			Cmd{Argv: []string{"sh", "-c", "sleep 30 & sleep 30"}, Timeout: 200 * time.Millisecond}, "context deadline exceeded", -1, ""},
		{"the environment holds LC_ALL=C and the extra variables",
			Cmd{Argv: []string{"sh", "-c", "echo $LC_ALL $UPKEEP_X"}, Env: []string{"UPKEEP_X=1"}}, "", 0, "C 1\n"},
		{"standard input is empty so prompts cannot hang",
			Cmd{Argv: []string{"sh", "-c", "read x; echo rc=$?"}}, "", 0, "rc=1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			start := time.Now()
			res, err := Run(context.Background(), tt.cmd)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if res.ExitCode != tt.wantExit {
				t.Errorf("exit = %d, want %d", res.ExitCode, tt.wantExit)
			}
			if res.Output != tt.wantOut {
				t.Errorf("output = %q, want %q", res.Output, tt.wantOut)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s: children were not killed", d)
			}
		})
	}
}

func TestRunKeepsOnlyTheTailOfLongOutput(t *testing.T) {
	res, err := Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "seq 1 100000; echo LAST"}, MaxOutput: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Output) != 1024 || !res.Truncated || !strings.HasSuffix(res.Output, "100000\nLAST\n") {
		t.Fatalf("len=%d truncated=%v tail=%q", len(res.Output), res.Truncated, res.Output[len(res.Output)-20:])
	}
}

func TestEnvironDropsUnlistedVariables(t *testing.T) {
	got := Environ([]string{"PATH=/bin", "APT_CONFIG=/evil", "GNUPGHOME=/x", "HOME=/root", "LC_ALL=de_DE"}, []string{"HOME=/tmp/h", "APT_CONFIG=/r/apt.conf"})
	want := []string{"PATH=/bin", "HOME=/tmp/h", "LC_ALL=C", "APT_CONFIG=/r/apt.conf"}
	if !slices.Equal(got, want) {
		t.Fatalf("Environ = %q, want %q", got, want)
	}
}

func TestTailWrites(t *testing.T) {
	tl := &Tail{Max: 5}
	for _, s := range []string{"ab", "cd", "ef", "g"} {
		tl.Write([]byte(s))
	}
	if tl.String() != "cdefg" || !tl.Truncated() {
		t.Fatalf("tail = %q truncated=%v", tl.String(), tl.Truncated())
	}
	tl.Write([]byte("0123456789"))
	if tl.String() != "56789" {
		t.Fatalf("tail = %q", tl.String())
	}
}

func BenchmarkTailWrite(b *testing.B) {
	tl := &Tail{Max: DefaultMaxOutput}
	line := []byte("Get:1 http://127.0.0.1:8080 stable/main amd64 agent amd64 1.1.0 [716 B]\n")
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		tl.Write(line)
	}
}
