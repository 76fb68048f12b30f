// Package hostupdater is `upkeep agent`: beside one agent installed from a
// package and run by systemd, it fetches the channel's target, decides with
// the shared chain whether the agent may restart now, installs the exact
// version through the host's package manager, judges health over a settle
// period, and rolls back by itself when a release is bad. It asks as
// itself (agent id and group), so a progressive rollout can hold it back
// (RolloutHeld), and takes a concurrency lease from the server before
// installing (ConcurrencyLimit when refused), given back once the update or
// its rollback is over; an interrupted update keeps it until the next pass
// recovers, or the server's TTL ends it.
package hostupdater

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/health"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/spec"
)

// Config is the updater's configuration file (see examples/systemd/agent.yaml).
type Config struct {
	Server    string `yaml:"server"`    // version server base URL
	Channel   string `yaml:"channel"`   // release channel to follow
	Group     string `yaml:"group"`     // maintenance group, for schedule: server
	AgentID   string `yaml:"agentID"`   // default: the host name
	CAFile    string `yaml:"caFile"`    // extra CA for the version server (private PKI)
	TokenFile string `yaml:"tokenFile"` // bearer token for reports

	Package   string `yaml:"package"`   // the agent's package name
	Unit      string `yaml:"unit"`      // the agent's systemd unit
	Installer string `yaml:"installer"` // auto | apt | dnf | yum | zypper
	// Restart is how the agent picks up a new version: restart (the
	// default, DefaultRestart), try-restart, reload, or none when the
	// package's own scripts restart it.
	Restart string `yaml:"restart"`
	// Root runs the package manager against another root; tests only.
	Root string `yaml:"root"`

	StateDir string `yaml:"stateDir"`

	Schedule ScheduleConfig `yaml:"schedule"`
	Health   HealthConfig   `yaml:"health"`

	UpdateDuration    Duration `yaml:"updateDuration"`    // time an update needs inside a window
	UnusableThreshold int      `yaml:"unusableThreshold"` // consecutive unusable-schedule checks before updating anyway
	Interval          Duration `yaml:"interval"`
	Jitter            Duration `yaml:"jitter"`
	Report            *bool    `yaml:"report"` // send reports to the server; default true when tokenFile is set
	// Leases: take a concurrency lease from the server before each update,
	// so that at most the group's maxConcurrent agents update at once;
	// default true when tokenFile is set (the leases route takes the
	// report token).
	Leases *bool `yaml:"leases"`
}

// ScheduleConfig says where the agent's maintenance schedule comes from.
type ScheduleConfig struct {
	// Source is server (fetched for Group and saved in StateDir), file (written
	// by the agent in Teleport's format at File) or none.
	Source string `yaml:"source"`
	File   string `yaml:"file"`
}

// HealthConfig lists the checks that judge the agent. Any subset may be set.
type HealthConfig struct {
	HTTP *struct {
		URL    string `yaml:"url"`
		Status int    `yaml:"status"`
	} `yaml:"http"`
	Systemd  *bool    `yaml:"systemd"` // judge the unit's state; default true
	Command  []string `yaml:"command"`
	Settle   Duration `yaml:"settle"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
}

// Duration reads Go duration strings ("30s", "5m") from YAML.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration like 30s or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Defaults.
const (
	DefaultStateDir     = "/var/lib/upkeep-agent"
	DefaultScheduleFile = "/etc/teleport-upgrade.d/schedule"
	DefaultInterval     = 5 * time.Minute
	// DefaultRestart starts the agent even when it was stopped: a first
	// install needs that, and under try-restart a stopped agent would be
	// judged unhealthy after every update and rolled back.
	DefaultRestart = "restart"
	DefaultJitter  = time.Minute
	maxConfigBytes = 1 << 20
)

// LoadConfig reads and checks a configuration file. Every problem is named
// with the file and line.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigBytes)
	}
	return ParseConfig(path, data)
}

// ParseConfig checks a configuration file's bytes; name is used in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty configuration: set at least server, channel and package", name)
		}
		return nil, yamlError(name, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // already decoded once; only positions are read
	if errs := c.check(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = fmt.Sprintf("%s:%d: %s: %s", name, lineOf(&root, e.field), e.field, e.msg)
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	c.applyDefaults()
	return &c, nil
}

var (
	yamlLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

// yamlError rewrites yaml.v3's errors to name the file: "agent.yaml:4: ...".
func yamlError(name string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for i, m := range msgs {
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			m = g[1] + ": " + g[2]
			msgs[i] = name + ":" + unknownField.ReplaceAllString(m, "unknown field $1")
		} else {
			msgs[i] = name + ": " + strings.TrimPrefix(m, "yaml: ")
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

type fieldError struct{ field, msg string }

func (c *Config) check() []fieldError {
	var errs []fieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError{field, fmt.Sprintf(format, args...)})
	}
	if c.Server == "" {
		add("server", "required: the version server's base URL, e.g. https://upkeep.example.com")
	}
	if c.Channel == "" {
		add("channel", "required: the release channel to follow, e.g. stable/cloud")
	}
	if c.Package == "" {
		add("package", "required: the agent's package name")
	}
	switch c.Installer {
	case "", "auto", "apt", "dnf", "yum", "zypper":
	default:
		add("installer", "%q is not one of auto, apt, dnf, yum, zypper", c.Installer)
	}
	switch c.Restart {
	case "", "try-restart", "restart", "reload", "none":
	default:
		add("restart", "%q is not one of try-restart, restart, reload, none", c.Restart)
	}
	switch c.Schedule.Source {
	case "", "server", "file", "none":
	default:
		add("schedule.source", "%q is not one of server, file, none", c.Schedule.Source)
	}
	if c.Schedule.Source == "server" && c.Group == "" {
		add("group", "required when schedule.source is server: the maintenance group whose windows to fetch")
	}
	if h := c.Health.HTTP; h != nil {
		if h.URL == "" {
			add("health.http.url", "required when health.http is set")
		}
		if h.Status != 0 && (h.Status < 100 || h.Status > 599) {
			add("health.http.status", "%d is not an HTTP status", h.Status)
		}
	}
	if c.AgentID != "" {
		if err := report.CheckAgentID(c.AgentID); err != nil {
			add("agentID", "%v", err)
		}
	}
	if c.Interval != 0 && time.Duration(c.Interval) < 10*time.Second {
		add("interval", "%s is too short: use 10s or more", time.Duration(c.Interval))
	}
	if c.Jitter != 0 && c.Interval != 0 && c.Jitter >= c.Interval {
		add("jitter", "must be shorter than interval")
	}
	if c.Leases != nil && *c.Leases && c.TokenFile == "" {
		add("leases", "true needs tokenFile: the server's leases route takes the report token")
	}
	if c.UnusableThreshold < 0 {
		add("unusableThreshold", "must not be negative")
	}
	if c.UpdateDuration != 0 && time.Duration(c.UpdateDuration) > 24*time.Hour {
		add("updateDuration", "%s is longer than a day", time.Duration(c.UpdateDuration))
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].field < errs[j].field })
	return errs
}

func (c *Config) applyDefaults() {
	if c.Installer == "" {
		c.Installer = "auto"
	}
	if c.Restart == "" {
		c.Restart = DefaultRestart
	}
	if c.Unit == "" {
		c.Unit = c.Package + ".service"
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Schedule.Source == "" {
		// With a group the server knows the windows; without one the agent's own file does.
		c.Schedule.Source = "server"
		if c.Group == "" {
			c.Schedule.Source = "file"
		}
	}
	if c.Schedule.File == "" {
		c.Schedule.File = DefaultScheduleFile
	}
	if c.AgentID == "" {
		c.AgentID, _ = os.Hostname()
	}
	if c.Interval == 0 {
		c.Interval = Duration(DefaultInterval)
	}
	if c.Jitter == 0 {
		c.Jitter = Duration(min(DefaultJitter, time.Duration(c.Interval)/2))
	}
	// The effective values, rather than 0 for "the default", so that the
	// example's documented defaults can be checked against them.
	if c.Health.Settle == 0 {
		c.Health.Settle = Duration(health.DefaultSettlePeriod)
	}
	if h := c.Health.HTTP; h != nil && h.Status == 0 {
		h.Status = http.StatusOK
	}
	if c.UpdateDuration == 0 {
		c.UpdateDuration = Duration(spec.DefaultUpdateDuration)
	}
	if c.UnusableThreshold == 0 {
		c.UnusableThreshold = reconcile.DefaultUnusableThreshold
	}
	if c.Health.Systemd == nil {
		yes := true
		c.Health.Systemd = &yes
	}
	if c.Report == nil {
		send := c.TokenFile != ""
		c.Report = &send
	}
	if c.Leases == nil {
		take := c.TokenFile != ""
		c.Leases = &take
	}
}

// lineOf finds the line of a dotted field path in a YAML document, or the
// document's first line when the field is absent.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, key := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}
