package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestDefaultChannel(t *testing.T) {
	cp := "apiVersion: upkeep.dev/v1alpha1\nkind: ControlPlane\nmetadata: {name: cloud}\nspec: {version: 17.4.2}\n"
	channel := func(name, extra string) string {
		return "---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: " + name + "}\nspec:\n  controlPlane: cloud\n  version: 17.3.0\n" + extra
	}
	tests := []struct {
		scenario string
		files    map[string]string
		want     string // the default channel's name, "" for none
		err      string // the error line, "" when valid
	}{
		{"no channel is the default", map[string]string{"a.yaml": cp + channel("stable", "")}, "", ""},
		{"a channel marked default answers as it", map[string]string{"a.yaml": cp + channel("stable", "  default: true\n") + channel("edge", "")}, "stable", ""},
		{"a channel named default is the default without the field", map[string]string{"a.yaml": cp + channel("default", "") + channel("edge", "")}, "default", ""},
		{"default: false is not the default", map[string]string{"a.yaml": cp + channel("stable", "  default: false\n")}, "", ""},
		{"two channels marked default are refused at the second, naming the first",
			map[string]string{"a.yaml": cp + channel("stable", "  default: true\n"), "b.yaml": channel("edge", "  default: true\n")},
			"", `b.yaml:8:12: spec.default: channel "stable" is already marked default at a.yaml:12:12`},
		{"a channel marked default beside one named default is refused",
			map[string]string{"a.yaml": cp + channel("default", ""), "b.yaml": channel("edge", "  default: true\n")},
			"", `b.yaml:8:12: spec.default: the channel named "default" (a.yaml:8:18) already answers as Teleport's default channel`},
		{"default must be a boolean",
			map[string]string{"a.yaml": cp + channel("stable", "  default: yes-please\n")}, "", "spec.default"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			st, errs := Load(fsys)
			if tt.err != "" {
				if lines := errorLines(errs); len(lines) != 1 || !strings.Contains(lines[0], tt.err) {
					t.Fatalf("errors %q, want one starting %q", lines, tt.err)
				}
				return
			}
			if errs != nil {
				t.Fatalf("errors: %v", errs)
			}
			got := ""
			if c := st.DefaultChannel(); c != nil {
				got = c.Name
			}
			if got != tt.want {
				t.Fatalf("default channel %q, want %q", got, tt.want)
			}
		})
	}
}
