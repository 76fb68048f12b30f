package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runValidateCmd runs `upkeep validate args...` and returns its output and
// exit code (as main would map the error).
func runValidateCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := newValidateCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	if err == nil {
		return out.String(), 0
	}
	var coded *exitCodeError
	if !errors.As(err, &coded) {
		t.Fatalf("validate %v: error %v is not an *exitCodeError", args, err)
	}
	if coded.Err != nil {
		out.WriteString("ERR " + coded.Err.Error() + "\n")
	}
	return out.String(), coded.Code
}

func writeFleet(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const validateFleet = `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 17.2.3
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/cloud
spec:
  controlPlane: cloud
  version: 17.1.0
`

const validateGroups = `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
`

func TestValidateValidFleet(t *testing.T) {
	out, code := runValidateCmd(t, "../../spec/testdata/valid")
	if code != 0 || out != "../../spec/testdata/valid: 2 control planes, 4 channels, 3 groups: valid\n" {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestValidateDefaultsToTheCurrentFolder(t *testing.T) {
	dir := writeFleet(t, map[string]string{"fleet.yaml": validateFleet, "groups/eu.yaml": validateGroups})
	t.Chdir(dir)
	out, code := runValidateCmd(t)
	if code != 0 || out != ".: 1 control plane, 1 channel, 1 group: valid\n" {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestValidateInvalidFleetPrintsEveryErrorUnderDir(t *testing.T) {
	dir := writeFleet(t, map[string]string{
		"fleet.yaml": validateFleet,
		"groups/eu.yaml": strings.Replace(validateGroups, "Europe/Berlin", "Europe/Berln", 1) +
			"---\napiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata:\n  name: us\nspec:\n  channel: stable/clod\n  timezone: UTC\n",
	})
	out, code := runValidateCmd(t, dir)
	d := filepath.ToSlash(dir)
	want := d + `/groups/eu.yaml:7:13: spec.timezone: unknown time zone "Europe/Berln"; want an IANA name such as "Europe/Berlin", "America/New_York" or "UTC"
` + d + `/groups/eu.yaml:14:12: spec.channel: channel "stable/clod" is not defined; define a Channel with that name or use a defined one: stable/cloud
` + d + `: 1 control plane, 1 channel, 1 group: 2 errors
`
	if code != 1 || out != want {
		t.Errorf("exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestValidateJSON(t *testing.T) {
	dir := writeFleet(t, map[string]string{"fleet.yaml": validateFleet + "  critical: maybe\n"})
	t.Chdir(dir)
	out, code := runValidateCmd(t, "--output", "json", ".")
	var got struct {
		Valid  bool `json:"valid"`
		Errors []struct {
			Pos struct {
				File      string
				Line, Col int
			} `json:"pos"`
			Path    string `json:"path"`
			Message string `json:"message"`
		} `json:"errors"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if code != 1 || got.Valid || len(got.Errors) != 1 {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	e := got.Errors[0]
	if e.Pos.File != "fleet.yaml" || e.Pos.Line != 15 || e.Pos.Col != 13 || e.Path != "spec.critical" || e.Message != `got "maybe"; want true or false` {
		t.Errorf("error = %+v", e)
	}
	if got.Counts["controlPlanes"] != 1 || got.Counts["channels"] != 0 || got.Counts["groups"] != 0 {
		t.Errorf("counts = %v, want the documents that passed: 1 control plane", got.Counts)
	}

	valid := writeFleet(t, map[string]string{"fleet.yaml": validateFleet})
	out, code = runValidateCmd(t, "-o", "json", valid)
	if code != 0 || !strings.Contains(out, `"valid": true`) || !strings.Contains(out, `"errors": []`) ||
		!strings.Contains(out, `"channels": 1`) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestValidateUsageErrors(t *testing.T) {
	file := filepath.Join(writeFleet(t, map[string]string{"fleet.yaml": validateFleet}), "fleet.yaml")
	for _, tt := range []struct {
		scenario string
		args     []string
		want     string
	}{
		{"an unknown output format", []string{"--output", "yaml", "."}, `ERR --output "yaml": use text or json`},
		{"two folders", []string{"a", "b"}, "ERR validate takes one folder, got 2 arguments"},
		{"an unknown flag", []string{"--strict"}, "ERR unknown flag: --strict"},
		{"a folder that does not exist", []string{"no/such/dir"}, "ERR no/such/dir: no such file or directory; give the root folder of the fleet repository"},
		{"a file instead of a folder", []string{file}, "ERR " + file + " is not a folder; give the root folder of the fleet repository"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			out, code := runValidateCmd(t, tt.args...)
			if code != 2 || strings.TrimSpace(out) != tt.want {
				t.Errorf("exit %d, output %q; want 2, %q", code, out, tt.want)
			}
		})
	}
}

// The folder's name is the operator's, but it may come from anywhere (a
// checkout named after a branch): a newline in it must not forge a line.
func TestValidateVerdictIsOneLineWhateverTheFolderName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fleet\nfleet: 0 control planes, 0 channels, 0 groups: valid")
	if err := os.MkdirAll(filepath.Join(dir, "groups"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"fleet.yaml": validateFleet, "groups/eu.yaml": validateGroups} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runValidateCmd(t, dir)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, ": 1 control plane, 1 channel, 1 group: valid\n") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}
