package nspawn

import (
	"slices"
	"strings"
	"testing"
)

func TestNspawnArgs(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		o        Options
		want     []string // must appear, in this order
		wantErr  string
	}{
		{
			scenario: "the defaults boot basic.target with the default masks and no registration",
			want:     []string{"--boot", "--register=no", "--keep-unit", "--console=passive", "--machine=m", "systemd.unit=basic.target", "systemd.mask=timers.target", "systemd.mask=postgresql.service", "systemd.mask=packagekit.service"},
		},
		{
			scenario: "a target, extra masks and binds are passed through",
			o:        Options{Target: "multi-user.target", Mask: []string{"nginx.service"}, Binds: []Bind{{Host: "/srv/a", Container: "/opt/a", ReadOnly: true}, {Host: "/srv/b", Container: "/opt/b"}}},
			want:     []string{"--bind-ro=/srv/a:/opt/a", "--bind=/srv/b:/opt/b", "systemd.unit=multi-user.target", "systemd.mask=packagekit.service", "systemd.mask=nginx.service"},
		},
		{
			scenario: "a relative bind is refused",
			o:        Options{Binds: []Bind{{Host: "srv", Container: "/opt"}}},
			wantErr:  "absolute",
		},
		{
			scenario: "a bind path with a colon is refused",
			o:        Options{Binds: []Bind{{Host: "/a:b", Container: "/opt"}}},
			wantErr:  "':'",
		},
		{
			scenario: "a mask that is not a unit name is refused",
			o:        Options{Mask: []string{"a b"}},
			wantErr:  "not a unit name",
		},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := NspawnArgs("m", tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for _, a := range got {
				if i < len(tc.want) && a == tc.want[i] {
					i++
				}
			}
			if i != len(tc.want) {
				t.Fatalf("args %q lack %q (in order)", got, tc.want[i:])
			}
			// Options for nspawn must come before the init's arguments.
			first := slices.IndexFunc(got, func(a string) bool { return strings.HasPrefix(a, "systemd.") })
			for _, a := range got[first:] {
				if strings.HasPrefix(a, "--") {
					t.Fatalf("nspawn option %q after the init's arguments in %q", a, got)
				}
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		line     string
		want     procStat
		wantErr  bool
	}{
		{
			scenario: "a plain command name",
			line:     "4490 (systemd) S 4484 4490 4490 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 1 2",
			want:     procStat{ppid: 4484, pgrp: 4490, start: 987654},
		},
		{
			scenario: "a command name with spaces and parentheses",
			line:     "12 (a) b (c)) R 7 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0",
			want:     procStat{ppid: 7, pgrp: 12, start: 42},
		},
		{scenario: "a truncated line", line: "12 (x) R 7 12", wantErr: true},
		{scenario: "no name at all", line: "garbage", wantErr: true},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := parseStat([]byte(tc.line))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseStat = %+v, %v; want %+v, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseShow(t *testing.T) {
	got := ParseShow("ActiveState=failed\nNRestarts=5\nExecMainStatus=1\nDescription=a=b\n\n")
	want := map[string]string{"ActiveState": "failed", "NRestarts": "5", "ExecMainStatus": "1", "Description": "a=b"}
	if len(got) != len(want) {
		t.Fatalf("ParseShow = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("ParseShow[%s] = %q, want %q", k, got[k], v)
		}
	}
}
