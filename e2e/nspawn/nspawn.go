// Package nspawn boots a real systemd in a throwaway container for
// end-to-end tests: systemd-nspawn over an overlay whose lower layer is the
// host's root and whose upper layer is a tmpfs, all mounted in a private mount
// namespace (unshare --mount --propagation private). Nothing the container
// writes reaches the host's disk, and the mounts vanish with the namespace
// when the container stops. The container shares the host's network, so it
// reaches test servers on 127.0.0.1 and the host reaches its services there.
//
// Files go in through Exec's standard input (WriteFile, CopyFile) or through
// bind mounts fixed at boot (Options.Binds). Writing into the overlay's upper
// directory from outside is not offered: the kernel leaves changes to a
// mounted overlay's layers undefined.
//
// Traps, found on Debian 12 with systemd 252:
//   - The container inherits the host's apt configuration: its sources (so
//     `apt-get update --error-on=any` also fetches the host's mirrors, 4.5 s
//     and a failure whenever one is unreachable: call RemoveAptSources), its
//     hooks (PackageKit: masked by DefaultMask) and options such as
//     Acquire::Check-Valid-Until.
//   - The lower layer is the live host root, not a snapshot: a host apt run
//     during a test shows through wherever the container has not written.
//   - Killing nsenter before the command it forked orphans that command to
//     the host's init; where that init does not reap, the zombie stalls the
//     container's shutdown by 10 s. Exec kills the command, never nsenter.
//   - systemd-nspawn keeps locks under /run/systemd/nspawn and util-linux's
//     mount writes /run/mount/utab; where the host's /run is a folder on disk
//     both would leak, so /run is a private tmpfs for nspawn and mounts use -n.
//   - The container's machine-id is the host's (journals are not linked).
package nspawn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultTarget is the unit the container boots to. basic.target starts
// sockets, D-Bus and journald but none of the host's own services: the
// container shares the host's network, so a service the host has enabled
// (a database, a web server) would otherwise start a second copy bound to the
// host's ports. Tests start the units they need with systemctl.
const DefaultTarget = "basic.target"

// DefaultMask is always masked at boot (systemd.mask=): timers would start
// apt-daily and friends mid-test; postgresql is enabled on these machines
// and would bind the host's port; packagekit is D-Bus-activated by the
// host's apt hook (20packagekit) after every dpkg run and then stays
// running beside apt (measured: 0.4 s the first time).
var DefaultMask = []string{"timers.target", "postgresql.service", "packagekit.service"}

// Defaults for Options' zero values.
const (
	DefaultBootTimeout = 60 * time.Second
	DefaultStopTimeout = 20 * time.Second
	DefaultTmpfsSize   = "2g"
)

// Options says how to boot. The zero value is a good default.
type Options struct {
	// Target is the unit to boot to (systemd.unit=); "" means DefaultTarget.
	Target string
	// Mask lists more units to mask at boot, besides DefaultMask.
	Mask []string
	// Binds are host paths mounted into the container at boot.
	Binds []Bind
	// TmpfsSize bounds what the container may write (tmpfs size=); "" means
	// DefaultTmpfsSize. Memory is used only for what is written.
	TmpfsSize string
	// BootTimeout bounds the wait for "running"; StopTimeout the wait for a
	// clean shutdown after SIGTERM before everything is killed.
	BootTimeout, StopTimeout time.Duration
	// Console, when set, also receives nspawn's and the container's console
	// output (the last part of it is kept for Console() either way).
	Console io.Writer
}

// Bind mounts Host at Container (systemd-nspawn --bind/--bind-ro).
type Bind struct {
	Host, Container string
	ReadOnly        bool
}

// Container is a booted systemd. Stop it (Boot registers that as cleanup).
type Container struct {
	Name string // the machine name, also the container's host name
	// BootTime is from starting nspawn to systemd reporting running (or
	// degraded); StopTime from SIGTERM to nspawn's exit.
	BootTime, StopTime time.Duration

	cmd         *exec.Cmd
	console     *tailBuffer
	pid1        int
	pid1Start   uint64
	stopTimeout time.Duration
	done        chan struct{} // closed when nspawn has exited
	waitErr     error         // nspawn's exit, valid after done
	stopOnce    sync.Once
	stopErr     error
}

// script runs inside `unshare --mount --propagation private`: every mount
// is private to this namespace and goes away with its last process.
// -n: do not record the mounts in the host's /run/mount/utab. The tmpfs on
// /run keeps nspawn's lock and propagation folders (/run/systemd/nspawn)
// off the host, where /run may be a plain folder on disk.
const script = `set -eu
o=$1; size=$2; shift 2
mount -n -t tmpfs -o "size=$size,mode=0755" upkeep-nspawn "$o"
mkdir "$o/upper" "$o/work" "$o/merged"
mount -n -t overlay -o "lowerdir=/,upperdir=$o/upper,workdir=$o/work" upkeep-nspawn "$o/merged"
mount -n -t tmpfs -o mode=0755 upkeep-nspawn-run /run
exec systemd-nspawn --directory="$o/merged" "$@"
`

// NspawnArgs is the systemd-nspawn command line after --directory: pure, so
// it is tested without booting.
func NspawnArgs(name string, o Options) ([]string, error) {
	target := o.Target
	if target == "" {
		target = DefaultTarget
	}
	args := []string{
		"--boot", "--register=no", "--keep-unit", "--console=passive",
		"--machine=" + name,
		// The overlay shares the host's machine-id: linking journals would
		// only print a refusal.
		"--link-journal=no",
	}
	for _, b := range o.Binds {
		if !strings.HasPrefix(b.Host, "/") || !strings.HasPrefix(b.Container, "/") || strings.ContainsAny(b.Host+b.Container, ":\n") {
			return nil, fmt.Errorf("nspawn bind %q -> %q: both paths must be absolute and free of ':'", b.Host, b.Container)
		}
		flag := "--bind="
		if b.ReadOnly {
			flag = "--bind-ro="
		}
		args = append(args, flag+b.Host+":"+b.Container)
	}
	// Arguments after the options go to the container's systemd as its
	// kernel command line.
	args = append(args, "systemd.unit="+target)
	for _, u := range append(append([]string{}, DefaultMask...), o.Mask...) {
		if u == "" || strings.ContainsAny(u, " \n/") {
			return nil, fmt.Errorf("nspawn mask %q: not a unit name", u)
		}
		args = append(args, "systemd.mask="+u)
	}
	return args, nil
}

// Start boots a container whose tmpfs is mounted (privately) on dir, an
// empty folder whose path holds no ',' or ':' (overlay option syntax). It
// returns once systemd says running or degraded.
func Start(ctx context.Context, dir string, o Options) (*Container, error) {
	if strings.ContainsAny(dir, ",:\n") || !strings.HasPrefix(dir, "/") {
		return nil, fmt.Errorf("nspawn: folder %q must be absolute and free of ',' and ':' (overlay mount options)", dir)
	}
	if o.TmpfsSize == "" {
		o.TmpfsSize = DefaultTmpfsSize
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	name, err := machineName()
	if err != nil {
		return nil, err
	}
	nargs, err := NspawnArgs(name, o)
	if err != nil {
		return nil, err
	}
	c := &Container{Name: name, console: newTailBuffer(256 << 10), stopTimeout: o.StopTimeout, done: make(chan struct{})}
	var out io.Writer = c.console
	if o.Console != nil {
		out = io.MultiWriter(c.console, o.Console)
	}
	argv := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", dir, o.TmpfsSize}, nargs...)
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	c.cmd.Env = containerEnv
	c.cmd.WaitDelay = 5 * time.Second
	// Pdeathsig: if the test binary dies without cleanup, nspawn gets
	// SIGTERM and shuts the container down. It fires when the thread that
	// started the child exits, so that thread stays locked until the child
	// has been reaped.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	began := time.Now()
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("nspawn: start unshare: %w", err)
	}

	bootCtx, cancel := context.WithTimeout(ctx, o.BootTimeout)
	defer cancel()
	if err := c.waitForInit(bootCtx); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.waitRunning(bootCtx); err != nil {
		c.Stop()
		return nil, err
	}
	c.BootTime = time.Since(began)
	return c, nil
}

// containerEnv is the environment of nspawn and of commands run inside:
// the caller's (GOFLAGS, proxies, a test's PATH) has no business there.
var containerEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "LC_ALL=C", "TERM=dumb",
	"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "DEBIAN_FRONTEND=noninteractive",
}

func machineName() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "upkeep-" + hex.EncodeToString(b), nil
}

// waitForInit finds the container's PID 1: the process below nspawn that is
// PID 1 of its own PID namespace.
func (c *Container) waitForInit(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pid, start, err := FindInit(c.cmd.Process.Pid)
		if err == nil {
			c.pid1, c.pid1Start = pid, start
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("nspawn exited before the container's systemd started: %v\n%s", c.waitErr, c.console.String())
		case <-ctx.Done():
			return fmt.Errorf("nspawn: the container's PID 1 did not appear: %w (last: %v)\n%s", ctx.Err(), err, c.console.String())
		case <-tick.C:
		}
	}
}

// waitRunning polls `systemctl is-system-running` until it says running or
// degraded (a unit failed, but systemd finished booting).
func (c *Container) waitRunning(ctx context.Context) error {
	last := ""
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, _ := c.Exec(callCtx, "systemctl", "is-system-running")
		cancel()
		state := strings.TrimSpace(out)
		switch state {
		case "running", "degraded":
			return nil
		case "maintenance", "stopping":
			return fmt.Errorf("nspawn: the container's systemd is %s instead of booting\n%s", state, c.console.String())
		}
		last = state
		select {
		case <-c.done:
			return fmt.Errorf("nspawn exited while the container booted: %v\n%s", c.waitErr, c.console.String())
		case <-ctx.Done():
			jobs, _ := c.Exec(context.Background(), "systemctl", "list-jobs", "--no-pager")
			return fmt.Errorf("nspawn: systemd did not finish booting: %w; last state %q; pending jobs:\n%s\nconsole:\n%s", ctx.Err(), last, jobs, c.console.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PID1 is the host PID of the container's systemd.
func (c *Container) PID1() int { return c.pid1 }

// Console returns the last part of nspawn's and the container's console output.
func (c *Container) Console() string { return c.console.String() }

// Done is closed when nspawn has exited.
func (c *Container) Done() <-chan struct{} { return c.done }

// Exec runs argv inside the container (all its namespaces, its root) as
// root with a fixed environment and returns the combined output. A failure
// carries the command and its output. Cancelling ctx kills the command and
// everything it started that stayed in its process group.
func (c *Container) Exec(ctx context.Context, argv ...string) (string, error) {
	return c.ExecInput(ctx, nil, argv...)
}

// ExecInput is Exec with stdin as the command's standard input.
func (c *Container) ExecInput(ctx context.Context, stdin io.Reader, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("nspawn exec: no command")
	}
	// After the container is gone its PID may belong to a host process:
	// nsenter would then run the command in the host's namespaces.
	select {
	case <-c.done:
		return "", fmt.Errorf("in container %s: %s: the container has stopped", c.Name, strings.Join(argv, " "))
	default:
	}
	if !c.initAlive() {
		return "", fmt.Errorf("in container %s: %s: its PID 1 (%d) is gone", c.Name, strings.Join(argv, " "), c.pid1)
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(c.pid1), "--all", "--"}, argv...)...)
	cmd.Env = containerEnv
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// nsenter forks the command into the container's PID namespace and does
	// not pass signals on. Killing nsenter first would orphan the command to
	// the host's init (the reaper of nsenter's namespace), and if that init
	// does not reap, the zombie stalls the container's shutdown for 10 s.
	// So the command and its group are killed and nsenter reaps them; past
	// WaitDelay nsenter itself is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		killGroupBut(cmd.Process.Pid)
		return nil
	}
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("in container %s: %s: %w\n%s", c.Name, strings.Join(argv, " "), err, out.String())
	}
	return out.String(), nil
}

// WriteFile writes data to path inside the container, creating its folder.
func (c *Container) WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode) error {
	return c.writeFrom(ctx, bytes.NewReader(data), path, perm)
}

// CopyFile copies the host file hostPath to path inside the container.
func (c *Container) CopyFile(ctx context.Context, hostPath, path string, perm fs.FileMode) error {
	f, err := os.Open(hostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.writeFrom(ctx, f, path, perm)
}

func (c *Container) writeFrom(ctx context.Context, r io.Reader, path string, perm fs.FileMode) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("nspawn write %q: path must be absolute", path)
	}
	// The temporary name and mv make the write atomic for readers inside.
	const put = `set -e; mkdir -p "$(dirname "$1")"; cat > "$1.upkeep-tmp"; chmod "$2" "$1.upkeep-tmp"; mv -f "$1.upkeep-tmp" "$1"`
	_, err := c.ExecInput(ctx, r, "sh", "-c", put, "sh", path, fmt.Sprintf("%o", perm.Perm()))
	return err
}

// RemoveAptSources deletes, inside the container, every apt source and
// index inherited from the host, so apt sees only what the test writes.
// Without it `apt-get update --error-on=any` in the container also fetches
// the host's mirrors: slow, and one unreachable mirror fails the update.
func (c *Container) RemoveAptSources(ctx context.Context) error {
	_, err := c.Exec(ctx, "sh", "-c", `set -e
rm -f /etc/apt/sources.list
find /etc/apt/sources.list.d -mindepth 1 -delete
find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial -delete`)
	return err
}

// Show returns the given properties of a unit (systemctl show -p).
func (c *Container) Show(ctx context.Context, unit string, props ...string) (map[string]string, error) {
	out, err := c.Exec(ctx, "systemctl", "show", "--property="+strings.Join(props, ","), "--", unit)
	if err != nil {
		return nil, err
	}
	return ParseShow(out), nil
}

// ParseShow parses systemctl show's KEY=VALUE lines.
func ParseShow(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

// Stop shuts the container down: SIGTERM to nspawn (which halts the
// container's systemd), then, past StopTimeout, SIGKILL to the container's
// PID 1 (which kills every process of its PID namespace) and to nspawn.
// It is safe to call more than once.
func (c *Container) Stop() error {
	c.stopOnce.Do(func() {
		began := time.Now()
		select {
		case <-c.done:
			c.stopErr = c.exitedEarly()
			return
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
			c.StopTime = time.Since(began)
		case <-time.After(c.stopTimeout):
			c.killInit()
			_ = c.cmd.Process.Kill()
			<-c.done
			c.StopTime = time.Since(began)
			c.stopErr = fmt.Errorf("nspawn: container %s did not stop within %s of SIGTERM and was killed\n%s", c.Name, c.stopTimeout, c.console.String())
			return
		}
		// nspawn waits for the container's init, but make sure: a live PID 1
		// would keep the mounts and every process of the container.
		if c.initAlive() {
			c.killInit()
			c.stopErr = fmt.Errorf("nspawn: container %s's PID 1 (%d) outlived nspawn and was killed", c.Name, c.pid1)
		}
	})
	return c.stopErr
}

func (c *Container) exitedEarly() error {
	c.killInit()
	return fmt.Errorf("nspawn: container %s had already exited (%v)\n%s", c.Name, c.waitErr, c.console.String())
}

// initAlive says whether the container's PID 1 is still the same process
// (a reused PID has another start time).
func (c *Container) initAlive() bool {
	if c.pid1 == 0 {
		return false
	}
	st, err := readStat(c.pid1)
	return err == nil && st.start == c.pid1Start
}

func (c *Container) killInit() {
	if c.initAlive() {
		_ = syscall.Kill(c.pid1, syscall.SIGKILL)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
