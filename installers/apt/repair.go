package apt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/internal/pmlock"
	"upkeep.dev/upkeep/installers/internal/run"
)

var _ installers.Repairer = (*Installer)(nil)

// AdminDir is dpkg's database folder: /var/lib/dpkg, or inside Root.
func AdminDir(cfg Config) string { return filepath.Join(rootOrSlash(cfg.Root), "var", "lib", "dpkg") }

// Lock files dpkg and apt take with fcntl(2): the frontend lock (apt-get,
// or dpkg run by hand) and dpkg's own database lock.
func lockFiles(cfg Config) []string {
	return []string{filepath.Join(AdminDir(cfg), "lock-frontend"), filepath.Join(AdminDir(cfg), "lock")}
}

// busy reports the first process holding one of dpkg's locks.
func (i *Installer) busy() (pmlock.Holder, bool) {
	for _, f := range lockFiles(i.cfg) {
		if h, held, err := pmlock.Fcntl(f); err == nil && held {
			return h, true
		}
	}
	return pmlock.Holder{}, false
}

func busyError(h pmlock.Holder) error {
	return fmt.Errorf("%w: another package manager (%s) is running; retry later (upkeep's next pass checks again)", installers.ErrLocked, h)
}

// AuditArgs asks dpkg for packages an interrupted run left unfinished.
func AuditArgs(cfg Config) []string {
	return []string{"dpkg", "--admindir=" + AdminDir(cfg), "--audit"}
}

// ConfigureArgs finishes every interrupted install: what apt itself asks for
// ("dpkg was interrupted, you must manually run 'dpkg --configure -a'"),
// keeping changed configuration files as InstallArgs does.
func ConfigureArgs(cfg Config) []string {
	argv := []string{"dpkg"}
	if cfg.Root != "" {
		argv = append(argv, "--root="+cfg.Root, "--force-script-chrootless")
	}
	return append(argv, "--force-confdef", "--force-confold", "--configure", "-a")
}

// interrupted returns what dpkg says is unfinished ("" when nothing is):
// packages in a transient state (dpkg --audit) or status updates not yet
// merged into the database (files in updates/, which is what makes apt say
// "dpkg was interrupted").
func (i *Installer) interrupted(ctx context.Context) (string, error) {
	argv := AuditArgs(i.cfg)
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(i.cfg), Timeout: i.cfg.Timeout})
	if err != nil {
		return "", installers.CommandError("dpkg --audit", argv, res.ExitCode, res.Output, err, nil)
	}
	found := strings.TrimSpace(res.Output)
	entries, _ := os.ReadDir(filepath.Join(AdminDir(i.cfg), "updates"))
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") == "" {
			if found == "" {
				found = "status updates not yet merged into the database (" + filepath.Join(AdminDir(i.cfg), "updates") + ")"
			}
			break
		}
	}
	return found, nil
}

// Repair finishes an install dpkg was interrupted in, with `dpkg
// --configure -a`, but only while it holds dpkg's frontend lock itself (as
// apt does), so never while another dpkg or apt runs. keep is not needed:
// dpkg's database says what was being installed.
func (i *Installer) Repair(ctx context.Context, pkg, keep string) (installers.Repair, error) {
	if h, held := i.busy(); held {
		return installers.Repair{Rule: installers.RepairBusy, Message: h.String()}, busyError(h)
	}
	found, err := i.interrupted(ctx)
	if err != nil {
		return installers.Repair{}, err
	}
	if found == "" {
		return installers.Repair{Rule: installers.RepairNothing, Message: "dpkg's database shows no interrupted install"}, nil
	}
	lock, holder, err := pmlock.Lock(lockFiles(i.cfg)[0])
	if err != nil {
		return installers.Repair{}, err
	}
	if holder != nil {
		return installers.Repair{Rule: installers.RepairBusy, Message: holder.String()}, busyError(*holder)
	}
	defer lock.Close()
	argv := ConfigureArgs(i.cfg)
	rep := installers.Repair{Rule: installers.RepairDpkgInterrupted, Commands: [][]string{argv}}
	// dpkg must not take the frontend lock this process holds for it.
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: append(Env(i.cfg), "DPKG_FRONTEND_LOCKED=1"), Timeout: i.cfg.Timeout, Transaction: true})
	if err != nil {
		e := installers.CommandError("dpkg --configure -a", argv, res.ExitCode, res.Output, err, Rules)
		if e.Next == "" {
			e.Next = "read the output: a maintainer script failed; fix its cause, then run `dpkg --configure -a` (no other package manager is running)"
		}
		rep.Message = "dpkg had left unfinished: " + oneLine(found) + "; `dpkg --configure -a` did not finish it"
		return rep, e
	}
	left, err := i.interrupted(context.WithoutCancel(ctx))
	if err != nil {
		return rep, err
	}
	if left != "" {
		rep.Message = "`dpkg --configure -a` ran, but dpkg still reports: " + oneLine(left)
		return rep, fmt.Errorf("apt: after `dpkg --configure -a`, dpkg still reports: %s; next: run `dpkg --audit` and fix what it lists by hand", oneLine(left))
	}
	rep.Message = "dpkg had left unfinished: " + oneLine(found) + "; `dpkg --configure -a` finished it"
	return rep, nil
}

func oneLine(s string) string {
	fields := strings.Fields(s)
	out := strings.Join(fields, " ")
	if len(out) > 300 {
		out = out[:300] + "..."
	}
	return out
}

// explainSources names the source(s) a failed apt-get update could not use,
// with the file and line that configures each, and says that one broken
// source blocks every update, the agent's package or not.
func (i *Installer) explainSources(ctx context.Context, err error, output string) error {
	var e *installers.Error
	if !errors.As(err, &e) {
		return err
	}
	failed := failedURIs(output)
	if len(failed) == 0 {
		return err
	}
	where := sourceLines(i.cfg)
	var parts []string
	for _, u := range failed {
		p := "source " + u
		if loc, ok := where[u]; ok {
			p += " (" + strings.Join(loc, ", ") + ")"
		}
		parts = append(parts, p)
	}
	related := ""
	if i.cfg.Package != "" {
		served := i.servedBy(ctx, i.cfg.Package)
		if len(served) > 0 && !slices.ContainsFunc(failed, func(u string) bool { return slices.Contains(served, u) }) {
			related = fmt.Sprintf(", although it is not where %s comes from (%s)", i.cfg.Package, strings.Join(served, ", "))
		}
	}
	out := *e
	detail := strings.Join(parts, "; ") + " failed"
	if e.Detail != "" {
		detail += ": " + e.Detail
	}
	out.Detail = detail
	next := fmt.Sprintf("apt-get update fails as a whole when any source fails, so this blocks every update%s: "+
		"fix the source, or disable it (`Enabled: no` in its .sources file, or comment out its line) until it is fixed; "+
		"upkeep never skips a failing source, because one whose signature fails may serve tampered packages", related)
	if e.Next != "" {
		next = e.Next + "; " + next
	}
	out.Next = next
	return &out
}

// failedURIs reads the repository URIs apt-get update names in its errors
// ("Err:3 URI suite InRelease", "Failed to fetch URI/dists/...", "GPG error:
// URI suite", "The repository 'URI suite Release'"), without trailing "/".
func failedURIs(output string) []string {
	var uris []string
	add := func(u string) {
		u = strings.TrimSuffix(strings.Trim(u, "'\""), "/")
		if i := strings.Index(u, "/dists/"); i >= 0 {
			u = u[:i]
		}
		if strings.Contains(u, "://") && !slices.Contains(uris, u) {
			uris = append(uris, u)
		}
	}
	for _, line := range strings.Split(output, "\n") {
		f := strings.Fields(line)
		for k, w := range f {
			switch {
			case strings.HasPrefix(w, "Err:") && k+1 < len(f):
				add(f[k+1])
			case w == "fetch" && k+1 < len(f):
				add(f[k+1])
			case w == "error:" && k > 0 && f[k-1] == "GPG" && k+1 < len(f):
				add(f[k+1])
			case w == "repository" && k+1 < len(f) && strings.HasPrefix(f[k+1], "'"):
				add(f[k+1])
			}
		}
	}
	return uris
}

// sourceLines maps each configured URI (no trailing "/") to the file:line
// places that configure it: sources.list, *.list and deb822 *.sources.
func sourceLines(cfg Config) map[string][]string {
	at := map[string][]string{}
	etc := filepath.Join(rootOrSlash(cfg.Root), "etc", "apt")
	files := []string{filepath.Join(etc, "sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(SourcesDir(cfg.Root), pat))
		files = append(files, m...)
	}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			var uris []string
			switch {
			case strings.HasPrefix(line, "#"):
			case strings.HasPrefix(strings.ToLower(line), "uris:"):
				uris = strings.Fields(line[len("uris:"):])
			case strings.HasPrefix(line, "deb ") || strings.HasPrefix(line, "deb-src "):
				for _, w := range strings.Fields(line)[1:] {
					if strings.Contains(w, "://") {
						uris = append(uris, w)
						break
					}
				}
			}
			for _, u := range uris {
				u = strings.TrimSuffix(u, "/")
				at[u] = append(at[u], fmt.Sprintf("%s:%d", file, n))
			}
		}
		f.Close()
	}
	return at
}

// servedBy lists the repository URIs whose cached indexes offer pkg.
func (i *Installer) servedBy(ctx context.Context, pkg string) []string {
	res, err := run.Run(ctx, run.Cmd{Argv: MadisonArgs(i.cfg, pkg), Env: Env(i.cfg), Timeout: i.cfg.Timeout})
	if err != nil {
		return nil
	}
	var uris []string
	for _, line := range strings.Split(res.Output, "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			continue
		}
		if w := strings.Fields(f[2]); len(w) > 0 {
			u := strings.TrimSuffix(w[0], "/")
			if !slices.Contains(uris, u) {
				uris = append(uris, u)
			}
		}
	}
	return uris
}

// Busy reports whether apt or dpkg holds dpkg's lock now, and who.
func (i *Installer) Busy() (holder string, busy bool) {
	h, busy := i.busy()
	return h.String(), busy
}
