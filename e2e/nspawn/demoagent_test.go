package nspawn_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/demoagent/demopkg"
	"upkeep.dev/upkeep/e2e/nspawn"
)

const (
	keyringPath = "/etc/apt/keyrings/demo-agent.gpg"
	sourcePath  = "/etc/apt/sources.list.d/demo-agent.sources"
)

// health GETs the agent's /healthz from the host: the container shares the
// host's network.
func health(url string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(b)
}

// poll checks cond every 100 ms until it holds, failing t after within.
func poll(t *testing.T, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		ok, last := cond()
		if ok {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("%s: not within %s; last: %s", what, within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDemoAgentUnderSystemd installs the demo agent from a signed apt
// repository served on loopback into a booted container, runs it under
// systemd, updates it to the broken release and rolls it back: the path the
// host updater drives.
func TestDemoAgentUnderSystemd(t *testing.T) {
	nspawn.Require(t)
	began := time.Now()
	p := demopkg.BuildPackagesWith(t, t.TempDir(), demopkg.Options{SkipRPM: true})
	repo := p.ServeAptT(t)
	t.Logf("built and served %d .debs in %s", len(p.Debs), time.Since(began).Round(time.Millisecond))

	c := nspawn.Boot(t, nspawn.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(t *testing.T, argv ...string) string {
		t.Helper()
		s := time.Now()
		out, err := c.Exec(ctx, argv...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", strings.Join(argv, " "), time.Since(s).Round(time.Millisecond))
		return out
	}
	installed := func(t *testing.T) string {
		t.Helper()
		return strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Version}", demopkg.Name))
	}
	show := func(t *testing.T) map[string]string {
		t.Helper()
		m, err := c.Show(ctx, demopkg.UnitName, "ActiveState", "SubState", "Result", "NRestarts")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("apt in the container trusts only the test repository and installs 1.1.0", func(t *testing.T) {
		if err := c.RemoveAptSources(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFile(ctx, keyringPath, repo.Keyring, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFile(ctx, sourcePath, repo.Source(keyringPath), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "apt-get", "update", "-q", "--error-on=any")
		run(t, "apt-get", "install", "-y", "-q", "--no-install-recommends", demopkg.Name+"=1.1.0")
		if v := installed(t); v != "1.1.0" {
			t.Fatalf("installed %q, want 1.1.0", v)
		}
	})

	t.Run("systemd runs 1.1.0 and the host reaches it on loopback", func(t *testing.T) {
		run(t, "systemctl", "start", demopkg.UnitName)
		took := poll(t, 10*time.Second, "1.1.0 healthy", func() (bool, string) {
			code, body := health(p.HealthURL())
			return code == 200 && body == "ok 1.1.0\n", strconv.Itoa(code) + " " + body
		})
		t.Logf("healthy %s after start", took.Round(time.Millisecond))
		if m := show(t); m["ActiveState"] != "active" || m["NRestarts"] != "0" {
			t.Fatalf("unit state %v, want active with no restarts", m)
		}
	})

	t.Run("the broken 1.2.0 restarts with rc 0 yet NRestarts rises and /healthz fails", func(t *testing.T) {
		run(t, "apt-get", "install", "-y", "-q", demopkg.Name+"=1.2.0")
		if v := installed(t); v != "1.2.0" {
			t.Fatalf("installed %q, want 1.2.0", v)
		}
		// The trap the updater must not fall into: restart of a Type=simple
		// unit whose binary dies a second later returns 0.
		run(t, "systemctl", "restart", demopkg.UnitName)
		seen := map[string]bool{}
		took := poll(t, 15*time.Second, "1.2.0 restarting", func() (bool, string) {
			m := show(t)
			seen[m["ActiveState"]+"/"+m["SubState"]] = true
			n, _ := strconv.Atoi(m["NRestarts"])
			code, body := health(p.HealthURL())
			return n >= 3 && code != 200, m["ActiveState"] + " NRestarts=" + m["NRestarts"] + " health " + strconv.Itoa(code) + " " + body
		})
		// With a 1 s life and RestartSec=1 the unit never reaches the start
		// limit (5 starts in 10 s): it cycles through active, deactivating
		// and activating/auto-restart for ever, so ActiveState alone is
		// "active" part of the time. NRestarts and HTTP tell.
		t.Logf("NRestarts >= 3 and /healthz failing %s after restart; states seen: %v", took.Round(time.Millisecond), seen)
	})

	t.Run("rolling back to 1.1.0 makes the agent healthy again", func(t *testing.T) {
		run(t, "apt-get", "install", "-y", "-q", "--allow-downgrades", demopkg.Name+"=1.1.0")
		if v := installed(t); v != "1.1.0" {
			t.Fatalf("installed %q, want 1.1.0", v)
		}
		// Had the unit hit its start limit, it would refuse to start until reset.
		run(t, "systemctl", "reset-failed", demopkg.UnitName)
		run(t, "systemctl", "restart", demopkg.UnitName)
		poll(t, 10*time.Second, "1.1.0 healthy again", func() (bool, string) {
			code, body := health(p.HealthURL())
			return code == 200 && body == "ok 1.1.0\n", strconv.Itoa(code) + " " + body
		})
		if m := show(t); m["ActiveState"] != "active" {
			t.Fatalf("unit state %v, want active", m)
		}
	})
	t.Logf("whole scenario so far: %s", time.Since(began).Round(time.Millisecond))
}
