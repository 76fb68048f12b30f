package rpmdb

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/internal/pmlock"
	"upkeep.dev/upkeep/installers/internal/run"
	"upkeep.dev/upkeep/installers/internal/vercmp"
)

func rootOrSlash(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

// LockFile is rpm's own transaction lock (fcntl), in the database folder.
func LockFile(root string) string {
	return filepath.Join(rootOrSlash(root), "var", "lib", "rpm", ".rpm.lock")
}

// Busy reports the first holder of rpm's lock or of one of pidFiles (the
// front end's own: dnf's rpmdb_lock.pid, zypper's zypp.pid).
func Busy(root string, pidFiles ...string) (pmlock.Holder, bool) {
	if h, held, err := pmlock.Fcntl(LockFile(root)); err == nil && held {
		return h, true
	}
	for _, f := range pidFiles {
		if h, held := pmlock.PIDFile(f); held {
			return h, true
		}
	}
	return pmlock.Holder{}, false
}

// AllInstalled lists every installed version of pkg, newest first. More than
// one (of a package that is not install-only, like a kernel) is what an
// upgrade or downgrade interrupted between adding the new version and
// erasing the old one leaves.
func AllInstalled(ctx context.Context, root, pkg string, timeout time.Duration) ([]string, error) {
	argv := QueryArgs(root, pkg)
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(root), Timeout: timeout})
	if err != nil {
		if res.ExitCode == 1 && strings.Contains(res.Output, "is not installed") {
			return nil, nil
		}
		return nil, installers.CommandError("rpm -q", argv, res.ExitCode, res.Output, err, nil)
	}
	var versions []string
	for _, line := range strings.Split(res.Output, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && name == pkg && v != "" && !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
	}
	return installers.SortNewestFirst(versions, vercmp.RPM), nil
}

// EraseArgs erases one installed version of pkg (its scripts run, as the
// interrupted transaction would have run them; files the kept version also
// owns stay).
func EraseArgs(root, pkg, version string) []string {
	if _, v, ok := strings.Cut(version, ":"); ok {
		version = v // rpm -e takes NAME-VERSION-RELEASE
	}
	return append(append([]string{"rpm"}, RootArgs(root)...), "-e", pkg+"-"+version)
}

// Repair finishes an rpm transaction on pkg that was interrupted: while no
// package manager holds its lock, and pkg is installed twice, it erases the
// versions other than keep (the release the interrupted transaction was
// installing), which is what the transaction had left to do. Without keep it
// says exactly what to run. tool names the front end in messages.
func Repair(ctx context.Context, tool, root, pkg, keep string, timeout time.Duration, pidFiles ...string) (installers.Repair, error) {
	if h, held := Busy(root, pidFiles...); held {
		return installers.Repair{Rule: installers.RepairBusy, Message: h.String()},
			fmt.Errorf("%w: another package manager (%s) is running; retry later (upkeep's next pass checks again)", installers.ErrLocked, h)
	}
	versions, err := AllInstalled(ctx, root, pkg, timeout)
	if err != nil {
		return installers.Repair{}, err
	}
	if len(versions) <= 1 {
		return installers.Repair{Rule: installers.RepairNothing, Message: fmt.Sprintf("the rpm database holds %s once or not at all", pkg)}, nil
	}
	found := fmt.Sprintf("the rpm database holds %s at %s: an upgrade or downgrade was interrupted between installing one and erasing the other", pkg, strings.Join(versions, " and "))
	rep := installers.Repair{Rule: installers.RepairRPMDuplicates}
	kept := ""
	if keep != "" {
		kept, _ = installers.MatchVersion(keep, versions, vercmp.RPM)
	}
	if kept == "" {
		rep.Message = found
		return rep, fmt.Errorf("%s: %s; which one to keep is not known (no interrupted update of upkeep's names it); next: keep the version you want and erase the other with `rpm -e %s-VERSION-RELEASE`%s, then check with `rpm -q %s`",
			tool, found, pkg, duplicatesHint(tool), pkg)
	}
	for _, v := range versions {
		if v == kept {
			continue
		}
		argv := EraseArgs(root, pkg, v)
		rep.Commands = append(rep.Commands, argv)
		res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(root), Timeout: timeout, Transaction: true})
		if err != nil {
			rep.Message = found + fmt.Sprintf("; erasing %s failed", v)
			e := installers.CommandError("rpm -e", argv, res.ExitCode, res.Output, err, nil)
			e.Next = fmt.Sprintf("read the output (a %%preun or %%postun script of %s failed?); then erase it by hand with `rpm -e %s-%s` and check `rpm -q %s`", v, pkg, v, pkg)
			return rep, e
		}
	}
	left, err := AllInstalled(context.WithoutCancel(ctx), root, pkg, timeout)
	if err != nil {
		return rep, err
	}
	if len(left) != 1 || left[0] != kept {
		rep.Message = found + "; the duplicate is still there"
		return rep, fmt.Errorf("%s: after erasing the duplicates of %s, rpm lists %v; next: check `rpm -q %s` and erase by hand", tool, pkg, left, pkg)
	}
	rep.Message = fmt.Sprintf("%s; erased all but %s, the version being installed", found, kept)
	return rep, nil
}

// duplicatesHint is the front end's own command that erases duplicates,
// which always keeps the newest (wrong after an interrupted downgrade).
func duplicatesHint(tool string) string {
	switch tool {
	case "dnf":
		return " (`dnf remove --duplicates` keeps the newest)"
	case "yum":
		return " (`package-cleanup --cleandupes` keeps the newest)"
	}
	return ""
}
