package hostupdater

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		scenario string
		yaml     string
		wantErr  string // substring; "" means valid
	}{
		{"a minimal configuration is valid", "server: https://u.example.com\nchannel: stable/cloud\npackage: teleport\n", ""},
		{"the server is required", "channel: stable/cloud\npackage: teleport\n", "agent.yaml:1: server: required"},
		{"an unknown field is named with its line", "server: https://u\nchannel: c\npackage: p\nrestrat: restart\n", "agent.yaml:4: unknown field restrat"},
		{"an unknown installer is refused", "server: https://u\nchannel: c\npackage: p\ninstaller: pacman\n", `agent.yaml:4: installer: "pacman" is not one of auto, apt, dnf, yum, zypper`},
		{"a bad restart mode is refused", "server: https://u\nchannel: c\npackage: p\nrestart: bounce\n", `agent.yaml:4: restart: "bounce"`},
		{"a bad duration names the line", "server: https://u\nchannel: c\npackage: p\ninterval: soon\n", `agent.yaml:4: "soon" is not a duration`},
		{"a schedule from the server needs a group", "server: https://u\nchannel: c\npackage: p\nschedule:\n  source: server\n", "agent.yaml:1: group: required when schedule.source is server"},
		{"a too short interval is refused", "server: https://u\nchannel: c\npackage: p\ninterval: 1s\n", "agent.yaml:4: interval: 1s is too short"},
		{"jitter must be below the interval", "server: https://u\nchannel: c\npackage: p\ninterval: 1m\njitter: 2m\n", "agent.yaml:5: jitter: must be shorter"},
		{"an http check needs a url", "server: https://u\nchannel: c\npackage: p\nhealth:\n  http:\n    status: 200\n", "agent.yaml:5: health.http.url: required"},
		{"an empty file says what to set", "", "empty configuration"},
		{"leases need the report token", "server: https://u\nchannel: c\npackage: p\nleases: true\n", "agent.yaml:4: leases: true needs tokenFile"},
		{"leases may be turned off beside a token", "server: https://u\nchannel: c\npackage: p\ntokenFile: /t\nleases: false\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(tt.yaml))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte("server: https://u\nchannel: c\npackage: teleport\ngroup: eu\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Unit != "teleport.service" || c.Installer != "auto" || c.Restart != "restart" ||
		c.Schedule.Source != "server" || c.StateDir != DefaultStateDir || time.Duration(c.Interval) != DefaultInterval ||
		time.Duration(c.Jitter) != DefaultJitter || !*c.Health.Systemd || *c.Report || *c.Leases {
		t.Errorf("defaults: %+v", c)
	}
	c, err = ParseConfig("agent.yaml", []byte("server: https://u\nchannel: c\npackage: teleport\ntokenFile: /run/t\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Schedule.Source != "file" || c.Schedule.File != DefaultScheduleFile || !*c.Report || !*c.Leases {
		t.Errorf("without a group the agent's own file is the schedule and a token turns reports and leases on: %+v", c)
	}
}

// exampleConfig is the commented example operators start from.
const exampleConfig = "../../examples/systemd/agent.yaml"

// TestExampleConfigDocumentsEveryFieldAndItsDefaults: the example parses,
// names every field of Config, and each commented line marked "# the
// default" holds the value the code uses when the field is left out.
func TestExampleConfigDocumentsEveryFieldAndItsDefaults(t *testing.T) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	asIs, err := ParseConfig(exampleConfig, data)
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	for _, field := range yamlFields(reflect.TypeOf(Config{}), "") {
		leaf := field[strings.LastIndexByte(field, '.')+1:]
		if !regexp.MustCompile(`(?m)^\s*(#\s*)?` + regexp.QuoteMeta(leaf) + `:`).Match(data) {
			t.Errorf("the example does not document %s", field)
		}
	}
	marked := regexp.MustCompile(`(?m)^(\s*)# ([A-Za-z]+): (\S.*?)\s+# the default.*$`)
	if n := len(marked.FindAll(data, -1)); n < 8 {
		t.Fatalf("only %d lines are marked as defaults; the check below would prove little", n)
	}
	explicit := marked.ReplaceAll(data, []byte("$1$2: $3"))
	withDefaults, err := ParseConfig(exampleConfig+" (defaults written out)", explicit)
	if err != nil {
		t.Fatalf("the example with its documented defaults written out does not parse: %v\n%s", err, explicit)
	}
	if !reflect.DeepEqual(asIs, withDefaults) {
		t.Errorf("a documented default is not the code's:\nleft out:    %+v\nwritten out: %+v", *asIs, *withDefaults)
	}
}

// yamlFields lists the dotted YAML paths of t's fields.
func yamlFields(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
			out = append(out, yamlFields(ft, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}
