package report_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/health"
	"upkeep.dev/upkeep/reconcile/report"
)

var passTime = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

// hostReport is a valid report of a host agent waiting for its window.
func hostReport() report.Report {
	next := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	return report.Report{
		AgentID: "web-01.eu.example.com", Group: "eu-prod", Channel: "stable/cloud", Kind: report.KindHost,
		Hostname: "web-01.eu.example.com", CurrentVersion: "17.2.3", TargetVersion: "v17.3.0",
		Health: report.HealthHealthy, Action: "Wait", Rule: reconcile.RuleWaitForWindow, Reason: "NextWindow",
		Message: "17.3.0 waits for the window at 2026-03-31T00:00:00Z", NextWindow: &next,
		UpdaterVersion: "1.4.0", Time: passTime,
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		change   func(r *report.Report)
		fields   []string // fields named in the error, in order; none: valid
	}{
		{scenario: "a host report with a decision is valid", change: func(*report.Report) {}},
		{scenario: "a Kubernetes report names its workload", change: func(r *report.Report) {
			r.Kind, r.Hostname, r.Workload = report.KindKubernetes, "", "teleport/Deployment/agent"
		}},
		{scenario: "an agent that does not know its version and could not fetch the target is valid", change: func(r *report.Report) {
			r.CurrentVersion, r.TargetVersion, r.Health = "", "", report.HealthUnknown
			r.Action, r.Rule, r.Reason, r.Message = "Keep", reconcile.RuleTargetUnknown, "", "target unknown"
		}},
		{scenario: "a channel offering none is a valid target", change: func(r *report.Report) { r.TargetVersion = "none" }},
		{scenario: "a pass that failed before deciding carries its error and no decision", change: func(r *report.Report) {
			r.Action, r.Rule, r.Reason, r.Message, r.LastError = "", "", "", "", "dpkg-query: exit status 2"
		}},
		{scenario: "a pass without a decision must say why", change: func(r *report.Report) {
			r.Action, r.Rule, r.Reason, r.Message = "", "", "", ""
		}, fields: []string{"action"}},
		{scenario: "half a decision is refused", change: func(r *report.Report) {
			r.Action, r.LastError = "", "boom"
		}, fields: []string{"action"}},
		{scenario: "an empty report names every required field", change: func(r *report.Report) { *r = report.Report{} },
			fields: []string{"agentId", "channel", "kind", "health", "action", "updaterVersion", "time"}},
		{scenario: "a workload on its Teleport agent's schedule reports no group", change: func(r *report.Report) {
			r.Kind, r.Hostname, r.Workload, r.Group = report.KindKubernetes, "", "ns/Deployment/teleport", ""
		}},
		{scenario: "a host may report no group", change: func(r *report.Report) { r.Group = "" }},
		{scenario: "an agent id with a slash or space is refused", change: func(r *report.Report) { r.AgentID = "ns/pod 1" }, fields: []string{"agentId"}},
		{scenario: "an agent id must start with a letter or digit", change: func(r *report.Report) { r.AgentID = "-x" }, fields: []string{"agentId"}},
		{scenario: "an agent id longer than an FQDN is refused", change: func(r *report.Report) { r.AgentID = strings.Repeat("a", 254) }, fields: []string{"agentId"}},
		{scenario: "an upper-case group is not a fleet repository name", change: func(r *report.Report) { r.Group = "EU-prod" }, fields: []string{"group"}},
		{scenario: "a group has no slash", change: func(r *report.Report) { r.Group = "eu/prod" }, fields: []string{"group"}},
		{scenario: "a channel with an empty segment is refused", change: func(r *report.Report) { r.Channel = "stable//cloud" }, fields: []string{"channel"}},
		{scenario: "an unknown kind is refused", change: func(r *report.Report) { r.Kind = "vm" }, fields: []string{"kind"}},
		{scenario: "a host needs its hostname", change: func(r *report.Report) { r.Hostname = "" }, fields: []string{"hostname"}},
		{scenario: "a host does not report a workload", change: func(r *report.Report) { r.Workload = "ns/Deployment/x" }, fields: []string{"workload"}},
		{scenario: "a Kubernetes updater needs its workload", change: func(r *report.Report) {
			r.Kind = report.KindKubernetes
		}, fields: []string{"workload", "hostname"}},
		{scenario: "a hostname with a newline is refused", change: func(r *report.Report) { r.Hostname = "web\nINFO forged" }, fields: []string{"hostname"}},
		{scenario: "a version that is not semver is refused, bounding the metrics' labels", change: func(r *report.Report) {
			r.CurrentVersion = "latest"
		}, fields: []string{"currentVersion"}},
		{scenario: "a two-part version is not semver", change: func(r *report.Report) { r.TargetVersion = "17.3" }, fields: []string{"targetVersion"}},
		{scenario: "an overlong version is refused", change: func(r *report.Report) {
			r.CurrentVersion = "1.2.3-" + strings.Repeat("a", 64)
		}, fields: []string{"currentVersion"}},
		{scenario: "an unknown health is refused", change: func(r *report.Report) { r.Health = "ok" }, fields: []string{"health"}},
		{scenario: "stale is the store's judgement, never sent", change: func(r *report.Report) { r.Health = report.HealthStale }, fields: []string{"health"}},
		{scenario: "an action outside the decision chain is refused", change: func(r *report.Report) { r.Action = "Reboot" }, fields: []string{"action"}},
		{scenario: "a rule outside the decision chain is refused", change: func(r *report.Report) { r.Rule = "Whim" }, fields: []string{"rule"}},
		{scenario: "a reason is one CamelCase word", change: func(r *report.Report) { r.Reason = "not enough time" }, fields: []string{"reason"}},
		{scenario: "an overlong message is refused", change: func(r *report.Report) { r.Message = strings.Repeat("x", 2049) }, fields: []string{"message"}},
		{scenario: "a message may span lines", change: func(r *report.Report) { r.Message = "line one\n\tline two" }},
		{scenario: "an escape sequence in an error is refused", change: func(r *report.Report) { r.LastError = "\x1b[2J" }, fields: []string{"lastError"}},
		{scenario: "a rolled-back update is an outcome", change: func(r *report.Report) { r.Outcome = "rolledBack" }},
		{scenario: "an unknown outcome is refused", change: func(r *report.Report) { r.Outcome = "exploded" }, fields: []string{"outcome"}},
		{scenario: "invalid UTF-8 in a message is refused", change: func(r *report.Report) { r.Message = "\xff" }, fields: []string{"message"}},
		{scenario: "a zero next window is refused", change: func(r *report.Report) { r.NextWindow = &time.Time{} }, fields: []string{"nextWindow"}},
		{scenario: "a time from an unset clock is refused", change: func(r *report.Report) {
			r.Time = time.Unix(0, 0)
		}, fields: []string{"time"}},
		{scenario: "a rolled-back update is a valid outcome", change: func(r *report.Report) { r.Outcome = report.OutcomeRolledBack }},
		{scenario: "an outcome outside the wire's words is refused", change: func(r *report.Report) { r.Outcome = "RolledBack" }, fields: []string{"outcome"}},
		{scenario: "a decision by the concurrency limit is valid", change: func(r *report.Report) {
			r.Rule, r.Reason = reconcile.RuleConcurrencyLimit, "MaxConcurrentReached"
		}},
		{scenario: "a decision by a rollout hold is valid", change: func(r *report.Report) { r.Rule, r.Reason = reconcile.RuleRolloutHeld, "NotCanary" }},
		{scenario: "an updater version with a space is refused", change: func(r *report.Report) { r.UpdaterVersion = "1.4 beta" }, fields: []string{"updaterVersion"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r := hostReport()
			tc.change(&r)
			err := r.Validate()
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ve report.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a ValidationError naming %v", err, tc.fields)
			}
			var got []string
			for _, fe := range ve {
				got = append(got, fe.Field)
			}
			if !reflect.DeepEqual(got, tc.fields) {
				t.Errorf("fields %v, want %v\n%v", got, tc.fields, err)
			}
			if strings.ContainsAny(err.Error(), "\n\x1b") {
				t.Errorf("the error carries raw control characters: %q", err)
			}
		})
	}
}

func TestSetDecision(t *testing.T) {
	var r report.Report
	r.SetDecision(reconcile.Decision{Action: reconcile.ActionUpdate, Rule: reconcile.RuleCritical, Reason: "Critical", Message: "m"})
	if r.Action != "Update" || r.Rule != "Critical" || r.Reason != "Critical" || r.Message != "m" {
		t.Errorf("SetDecision: %+v", r)
	}
}

func TestHealthOf(t *testing.T) {
	for s, want := range map[health.Status]string{health.Healthy: "healthy", health.Unhealthy: "unhealthy", health.Unknown: "unknown", health.Status(9): "unknown"} {
		if got := report.HealthOf(s); got != want {
			t.Errorf("HealthOf(%s) = %q, want %q", s, got, want)
		}
	}
}

func TestDecode(t *testing.T) {
	valid, err := json.Marshal(hostReport())
	if err != nil {
		t.Fatal(err)
	}
	withField := func(k, v string) string { return strings.Replace(string(valid), "{", `{"`+k+`":`+v+",", 1) }
	for _, tc := range []struct {
		scenario string
		body     string
		field    string // the field the error names ("" when it names none)
		want     string // in the error
	}{
		{scenario: "a marshalled report decodes", body: string(valid)},
		{scenario: "an unknown field is named", body: withField("colour", `"blue"`), field: "colour", want: "unknown field"},
		{scenario: "a hostile unknown field name is quoted", body: withField("a\\nb", `1`), field: `"a\nb"`, want: "unknown field"},
		{scenario: "a number for a string names the field", body: strings.Replace(string(valid), `"group":"eu-prod"`, `"group":7`, 1), field: "group", want: "want a string, not number"},
		{scenario: "a bad time names the field", body: strings.Replace(string(valid), `"time":"2026-03-28T12:00:00Z"`, `"time":"yesterday"`, 1), field: "time", want: "not an RFC 3339 time"},
		{scenario: "a bad next window names the field", body: strings.Replace(string(valid), `"nextWindow":"2026-03-31T00:00:00Z"`, `"nextWindow":"soon"`, 1), field: "nextWindow", want: "not an RFC 3339 time"},
		{scenario: "a missing time is required", body: strings.Replace(string(valid), `,"time":"2026-03-28T12:00:00Z"`, ``, 1), field: "time", want: "required"},
		{scenario: "an array is not a report", body: `[1]`, want: "must be a JSON object"},
		{scenario: "two objects are refused", body: string(valid) + string(valid), want: "data after"},
		{scenario: "cut-short JSON is refused", body: string(valid[:40]), want: "cut short"},
		{scenario: "an empty body is refused", body: ``, want: "empty body"},
		{scenario: "broken JSON names the offset", body: `{"agentId":}`, want: "at byte"},
		{scenario: "validation follows decoding", body: strings.Replace(string(valid), `"kind":"host"`, `"kind":"vm"`, 1), field: "kind", want: `"vm"`},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r, err := report.Decode([]byte(tc.body))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := hostReport(); !reflect.DeepEqual(r, want) {
					t.Errorf("decoded %+v\nwant %+v", r, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error %v, want one containing %q", err, tc.want)
			}
			if tc.field != "" {
				var fe report.FieldError
				var ve report.ValidationError
				switch {
				case errors.As(err, &fe):
				case errors.As(err, &ve) && len(ve) > 0:
					fe = ve[0]
				default:
					t.Fatalf("error %v names no field", err)
				}
				if fe.Field != tc.field {
					t.Errorf("error names %q, want %q: %v", fe.Field, tc.field, err)
				}
			}
		})
	}
}

// The wire type Decode reads must have exactly Report's JSON fields.
func TestWireMatchesReport(t *testing.T) {
	var m map[string]any
	b, _ := json.Marshal(hostReport())
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	r := hostReport()
	r.LastError, r.Workload, r.Outcome = "e", "w", "updated" // omitempty fields, so they appear
	b, _ = json.Marshal(r)
	_ = json.Unmarshal(b, &m)
	want := reflect.TypeFor[report.Report]().NumField()
	if len(m) != want {
		t.Fatalf("a full report has %d JSON fields, Report has %d: %v", len(m), want, m)
	}
	// Every one of them decodes (an unknown one would be refused).
	if _, err := report.Decode(b); err != nil && strings.Contains(err.Error(), "unknown field") {
		t.Error(err)
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		scenario, in string
		limit        int
		want         string
	}{
		{scenario: "clean text is kept", in: "E: Unable to locate package\n\tteleport", limit: 100, want: "E: Unable to locate package\n\tteleport"},
		{scenario: "CRLF becomes LF", in: "a\r\nb", limit: 100, want: "a\nb"},
		{scenario: "escape sequences and lone CR are replaced", in: "\x1b[31mred\rx", limit: 100, want: "\uFFFD[31mred\uFFFDx"},
		{scenario: "invalid UTF-8 is replaced", in: "ok\xff\xfe", limit: 100, want: "ok\uFFFD"},
		{scenario: "long text is cut at a rune boundary", in: strings.Repeat("é", 10), limit: 9, want: "éé …"},
		{scenario: "a limit below the mark leaves nothing", in: "abcdef", limit: 2, want: ""},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			got := report.CleanText(tc.in, tc.limit)
			if got != tc.want {
				t.Errorf("CleanText(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
			r := hostReport()
			r.LastError = got
			if len(got) > tc.limit || r.Validate() != nil {
				t.Errorf("cleaned text %q does not pass validation: %v", got, r.Validate())
			}
		})
	}
}

func TestCheckAgentID(t *testing.T) {
	if err := report.CheckAgentID("web-01.eu.example.com"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "ns/pod", "-x", "a b", strings.Repeat("a", 254)} {
		if err := report.CheckAgentID(bad); err == nil || !strings.HasPrefix(err.Error(), "agentId: ") {
			t.Errorf("CheckAgentID(%q) = %v", bad, err)
		}
	}
}

func TestCanonicalVersion(t *testing.T) {
	for in, want := range map[string]string{"v17.2.3": "17.2.3", "17.2.3-rc.1+b5": "17.2.3-rc.1+b5", "": "", "none": "none", "junk": "junk"} {
		if got := report.CanonicalVersion(in); got != want {
			t.Errorf("CanonicalVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	body, _ := json.Marshal(hostReport())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := report.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	in := []string{"unknown", "17.10.0", "", "17.2.0", "v17.3.0-rc.1", "17.3.0", "latest"}
	got := slices.Clone(in)
	slices.SortStableFunc(got, report.CompareVersions)
	if want := []string{"17.2.0", "v17.3.0-rc.1", "17.3.0", "17.10.0", "", "latest", "unknown"}; !slices.Equal(got, want) {
		t.Errorf("CompareVersions order %q, want %q", got, want)
	}
	slices.SortStableFunc(got, report.CompareVersionsNewestFirst)
	if want := []string{"17.10.0", "17.3.0", "v17.3.0-rc.1", "17.2.0", "", "latest", "unknown"}; !slices.Equal(got, want) {
		t.Errorf("CompareVersionsNewestFirst order %q, want %q", got, want)
	}
}
