package nspawn

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStat is what /proc/PID/stat says about a process.
type procStat struct {
	ppid  int
	pgrp  int
	start uint64 // start time in clock ticks since boot: tells a reused PID apart
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat reads fields 4 (ppid), 5 (pgrp) and 22 (starttime) of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc stat %q: no ')'", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc stat: %d fields after the name, want at least 20", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("/proc stat ppid %q: %w", f[1], err)
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("/proc stat pgrp %q: %w", f[2], err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc stat starttime %q: %w", f[19], err)
	}
	return procStat{ppid: ppid, pgrp: pgrp, start: start}, nil
}

// nsPIDs returns the NSpid line of /proc/PID/status: the process's PID in
// each PID namespace it is in, outermost first.
func nsPIDs(pid int) ([]string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			return strings.Fields(rest), nil
		}
	}
	return nil, fmt.Errorf("/proc/%d/status: no NSpid line (kernel older than 4.1?)", pid)
}

// FindInit returns the host PID and start time of the container init below
// the process root: the closest descendant that is PID 1 of a PID namespace
// of its own. systemd-nspawn forks that init as its direct child today, but
// the search does not rely on it.
func FindInit(root int) (pid int, start uint64, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	children := map[int][]int{}
	starts := map[int]uint64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(p)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.ppid] = append(children[st.ppid], p)
		starts[p] = st.start
	}
	queue := append([]int{}, children[root]...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if ids, err := nsPIDs(p); err == nil && len(ids) > 1 && ids[len(ids)-1] == "1" {
			return p, starts[p], nil
		}
		queue = append(queue, children[p]...)
	}
	return 0, 0, fmt.Errorf("no process below PID %d is PID 1 of its own PID namespace yet", root)
}

// killGroupBut sends SIGKILL to every process of process group pgrp except
// its leader, until none is left (a process may fork meanwhile) or after a
// few rounds. It returns how many it signalled.
func killGroupBut(pgrp int) int {
	n := 0
	for round := 0; round < 5; round++ {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return n
		}
		found := 0
		for _, e := range entries {
			p, err := strconv.Atoi(e.Name())
			if err != nil || p == pgrp {
				continue
			}
			if st, err := readStat(p); err == nil && st.pgrp == pgrp {
				if syscall.Kill(p, syscall.SIGKILL) == nil {
					found++
				}
			}
		}
		n += found
		if found == 0 {
			return n
		}
	}
	return n
}
