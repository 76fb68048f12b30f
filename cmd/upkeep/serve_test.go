package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStoreURL(t *testing.T) {
	abs, err := filepath.Abs("state")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario string
		f        serveFlags
		want     string
		err      bool
	}{
		{scenario: "--store wins over the state directory", f: serveFlags{store: "postgres://u@db/upkeep", stateDir: "/var/lib/upkeep"}, want: "postgres://u@db/upkeep"},
		{scenario: "the default is SQLite in the state directory", f: serveFlags{stateDir: "/var/lib/upkeep"}, want: "sqlite:///var/lib/upkeep/fleet.db"},
		{scenario: "a relative state directory is made absolute", f: serveFlags{stateDir: "state"}, want: "sqlite://" + abs + "/fleet.db"},
		{scenario: "no store and no state directory is a usage error", f: serveFlags{}, err: true},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := storeURL(tc.f)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("storeURL = %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
			if tc.err && !isUsageError(err) {
				t.Errorf("%v is not a usage error", err)
			}
		})
	}
}

func TestDefaultStateDirFollowsSystemd(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/upkeep:/var/lib/other")
	if got := defaultStateDir(); got != "/var/lib/upkeep" {
		t.Errorf("defaultStateDir with StateDirectory= = %q", got)
	}
	t.Setenv("STATE_DIRECTORY", "")
	if got := defaultStateDir(); !filepath.IsAbs(got) {
		t.Errorf("defaultStateDir = %q, not absolute", got)
	}
}

func TestServeUIOperateNeedsThePage(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		f        serveFlags
	}{
		{"--ui-operate without report tokens has no page to operate", serveFlags{ui: true, uiOperate: true}},
		{"--ui-operate with --ui=false has no page to operate", serveFlags{ui: false, uiOperate: true}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			tc.f.source, tc.f.interval, tc.f.listen = t.TempDir(), time.Second, "127.0.0.1:0"
			tc.f.staleAfter, tc.f.history, tc.f.logFormat, tc.f.logLevel = time.Minute, 1, "text", "error"
			err := runServe(context.Background(), tc.f)
			if !isUsageError(err) || !strings.Contains(fmt.Sprint(err), "--ui-operate") {
				t.Errorf("runServe = %v, want a usage error naming --ui-operate", err)
			}
		})
	}
}

func TestWithPageRoutesOnlyUI(t *testing.T) {
	mark := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
	}
	h := withPage(mark("page"), mark("api"))
	for path, want := range map[string]string{
		"/ui": "page", "/ui/": "page", "/ui/rollouts/stable/cloud": "page",
		"/uix": "api", "/v1/ui/version": "api", "/v1/channels": "api", "/": "api",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Body.String() != want {
			t.Errorf("%s went to the %s, want the %s", path, rec.Body.String(), want)
		}
	}
}
