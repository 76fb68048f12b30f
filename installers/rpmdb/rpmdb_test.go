package rpmdb

import (
	"context"
	"strings"
	"testing"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
)

func TestQueryArgs(t *testing.T) {
	if got := strings.Join(QueryArgs("", "agent"), " "); got != "rpm -q --qf "+QueryFormat+" agent" {
		t.Fatalf("host argv = %s", got)
	}
	if got := strings.Join(QueryArgs("/r", "agent"), " "); got != "rpm --root /r -q --qf "+QueryFormat+" agent" {
		t.Fatalf("root argv = %s", got)
	}
	if Env("") != nil || Env("/r")[0] != "HOME=/r/.upkeep-rpm-home" {
		t.Fatalf("Env = %q / %q", Env(""), Env("/r"))
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		scenario, out, want string
		ok                  bool
	}{
		{"one installed version", "agent 1.1.0-1\n", "1.1.0-1", true},
		{"an epoch is kept", "agent 2:1.1.0-1.el9\n", "2:1.1.0-1.el9", true},
		{"several installed versions give the newest", "agent 1.9.0-1\nagent 1.10.0-1\n", "1.10.0-1", true},
		{"another package's line is ignored", "agent-extra 9.0-1\n", "", false},
		{"not installed", "package agent is not installed\n", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			got, ok := ParseQuery(tt.out, "agent")
			if got != tt.want || ok != tt.ok {
				t.Fatalf("ParseQuery = %q %v", got, ok)
			}
		})
	}
}

func TestInstalledInAnEmptyRoot(t *testing.T) {
	repos.RequireTools(t, "rpm")
	root := t.TempDir()
	if err := InitRoot(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	v, ok, err := Installed(context.Background(), root, "agent", 0)
	if err != nil || ok || v != "" {
		t.Fatalf("Installed = %q %v %v, want not installed", v, ok, err)
	}
	if err := InitRoot(context.Background(), "relative"); err == nil {
		t.Fatal("InitRoot accepted a relative path")
	}
}
