package report_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upkeep.dev/upkeep/reconcile/report"
)

const (
	tokenA = "3f1c8a2b9d4e7f60a1b2c3d4e5f60718"
	tokenB = "second-token-for-the-lab-fleet-0001"
)

func TestParseTokens(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		file     string
		n        int
		err      string // in the error; "" for none
	}{
		{scenario: "one token per line, comments and blank lines ignored", file: "# eu hosts\n" + tokenA + "\n\n  " + tokenB + "  \r\n", n: 2},
		{scenario: "a file without a token is refused", file: "# nothing yet\n\n", err: "tokens.txt holds no token"},
		{scenario: "a short token is refused with its line", file: tokenA + "\ntiny1\n", err: "tokens.txt:2: the token is 5 bytes, shorter than 16"},
		{scenario: "two tokens on one line are refused", file: tokenA + " " + tokenB + "\n", err: "tokens.txt:1: the token holds white space"},
		{scenario: "every bad line is named", file: "tiny1\n" + tokenA + "\ntiny2-tok\n", err: "tokens.txt:3:"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			tok, err := report.ParseTokens("tokens.txt", []byte(tc.file))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				for _, secret := range []string{tokenA, tokenB, "tiny1", "tiny2-tok"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error shows a token: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Len() != tc.n {
				t.Errorf("Len = %d, want %d", tok.Len(), tc.n)
			}
		})
	}
}

func TestTokensMatch(t *testing.T) {
	tok, err := report.ParseTokens("t", []byte(tokenA+"\n"+tokenB+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]bool{
		tokenA: true, tokenB: true, "": false, tokenA[:20]: false, tokenA + "x": false, strings.ToUpper(tokenA): false,
	} {
		if got := tok.Match(token); got != want {
			t.Errorf("Match(%q) = %v, want %v", token, got, want)
		}
	}
	var none *report.Tokens
	if none.Match(tokenA) || none.Len() != 0 {
		t.Error("nil Tokens match")
	}
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	if err := os.WriteFile(good, []byte(tokenA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := report.LoadTokens(good); err != nil || tok.Len() != 1 {
		t.Fatalf("LoadTokens: %v", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat(tokenA+"\n", 3000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := report.LoadTokens(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a huge file: %v", err)
	}
	if _, err := report.LoadTokens(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "report token file") {
		t.Errorf("a missing file: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer " + tokenA: tokenA, "bearer " + tokenA: tokenA, "BEARER  " + tokenA + " ": tokenA,
		"Basic dXNlcjpwYXNz": "", "Bearer": "", "Bearer ": "", tokenA: "", "": "",
	} {
		got, ok := report.BearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}

func BenchmarkTokensMatch(b *testing.B) {
	tok, _ := report.ParseTokens("t", []byte(tokenA+"\n"+tokenB+"\n"))
	for b.Loop() {
		tok.Match(tokenB)
	}
}

func TestTokensReload(t *testing.T) {
	tests := []struct {
		scenario    string
		rewrite     string // the file's new content; "-" removes it
		wantChanged bool
		wantErr     string
		wantA       bool // tokenA matches afterwards
		wantB       bool
	}{
		{"a new token added beside the old one is accepted too", tokenA + "\n" + tokenB + "\n", true, "", true, true},
		{"the old token removed is refused from then on", tokenB + "\n", true, "", false, true},
		{"the same tokens in another order and with comments change nothing", "# lab\n" + tokenA + "\n", false, "", true, false},
		{"a file that no longer parses keeps the tokens loaded before", tokenA + "\nshort\n", false, "shorter than", true, false},
		{"an emptied file keeps the tokens loaded before", "# rotated\n", false, "holds no token", true, false},
		{"a removed file keeps the tokens loaded before", "-", false, "report token file", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			tok, path := loadedTokenA(t)
			var err error
			if tt.rewrite == "-" {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, []byte(tt.rewrite), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			changed, err := tok.Reload()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Reload: %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), tokenA) || strings.Contains(err.Error(), tokenB)) {
				t.Errorf("the error quotes a token: %v", err)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if got := tok.Match(tokenA); got != tt.wantA {
				t.Errorf("Match(tokenA) = %v, want %v", got, tt.wantA)
			}
			if got := tok.Match(tokenB); got != tt.wantB {
				t.Errorf("Match(tokenB) = %v, want %v", got, tt.wantB)
			}
		})
	}
	parsed, err := report.ParseTokens("inline", []byte(tokenA))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsed.Reload(); err == nil {
		t.Error("tokens parsed from memory reloaded from a file")
	}
}

// loadedTokenA is tokens loaded from a new file holding tokenA, and the file.
func loadedTokenA(t *testing.T) (*report.Tokens, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(tokenA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := report.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok, path
}
