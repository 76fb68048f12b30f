package e2e

import (
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeReloadsReportTokensOnSIGHUP rotates the built server's report
// tokens without a restart: the new token is accepted and the old one
// refused after SIGHUP; a broken file then keeps the tokens in use.
func TestServeReloadsReportTokensOnSIGHUP(t *testing.T) {
	const rotated = "e2e-rotated-token-fedcba9876543210"
	args := storeServeArgs(t)
	tokenFile := args[len(args)-1]
	srv := startServe(t, args...)
	waitFor(t, 20*time.Second, "readyz", func() bool {
		code, _, _ := get(t, srv.URL+"/readyz")
		return code == http.StatusOK
	})
	fleetWith := func(token string) int {
		code, _, _ := get(t, srv.URL+"/v1/fleet", "Authorization", "Bearer "+token)
		return code
	}
	if got := fleetWith(storeToken); got != http.StatusOK {
		t.Fatalf("the first token: %d", got)
	}
	if got := fleetWith(rotated); got != http.StatusUnauthorized {
		t.Fatalf("the rotated token before the reload: %d, want 401", got)
	}

	write := func(content string) {
		t.Helper()
		// Written to a new file and renamed, as a Secret's volume does.
		tmp := tokenFile + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, tokenFile); err != nil {
			t.Fatal(err)
		}
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	write("# rotated on " + time.Now().Format(time.DateOnly) + "\n" + rotated + "\n")
	waitFor(t, 10*time.Second, "the rotated token accepted", func() bool { return fleetWith(rotated) == http.StatusOK })
	if got := fleetWith(storeToken); got != http.StatusUnauthorized {
		t.Errorf("the removed token after the reload: %d, want 401", got)
	}

	write("too-short\n")
	waitFor(t, 10*time.Second, "the broken file logged", func() bool {
		return strings.Contains(srv.logs.String(), "could not reload the report tokens")
	})
	if got := fleetWith(rotated); got != http.StatusOK {
		t.Errorf("the token in use after a broken file: %d, want 200", got)
	}
	logs := srv.logs.String()
	if !strings.Contains(logs, `"msg":"report tokens reloaded"`) {
		t.Errorf("no reload in the log:\n%s", logs)
	}
	if strings.Contains(logs, rotated) || strings.Contains(logs, storeToken) || strings.Contains(logs, "too-short") {
		t.Errorf("the log quotes a token:\n%s", logs)
	}
	stopServe(t, srv)
}
