package spec

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// baseFleet is a small valid repository; each invalid scenario adds or
// replaces files on top of it, so its errors are the scenario's alone.
const baseFleet = `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 17.2.3
  agents: ">= 16.0.0, < 17.3.0"
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/cloud
spec:
  controlPlane: cloud
  version: 17.1.0
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu-prod
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
`

func fleet(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{"base.yaml": {Data: []byte(baseFleet)}}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

func errorLines(errs Errors) []string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return lines
}

func TestLoadBaseFleetIsValid(t *testing.T) {
	st, errs := Load(fleet(nil))
	if errs != nil {
		t.Fatalf("base fleet: %v", errs)
	}
	if len(st.ControlPlanes) != 1 || len(st.Channels) != 1 || len(st.Groups) != 1 {
		t.Fatalf("base fleet: got %d control planes, %d channels, %d groups", len(st.ControlPlanes), len(st.Channels), len(st.Groups))
	}
}

func TestLoadReportsInvalidDocuments(t *testing.T) {
	tests := []struct {
		scenario string
		files    map[string]string
		want     []string
	}{
		{
			scenario: "an unknown field is named, with the fields allowed there",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: 17.0.0
  pinned: true
`},
			want: []string{`c.yaml:8:3: spec.pinned: unknown field; allowed here: controlPlane, version, follow, critical, default, rollout`},
		},
		{
			scenario: "a wrong apiVersion points at its value",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: 17.0.0
`},
			want: []string{`c.yaml:1:13: apiVersion: unsupported apiVersion "upkeep.dev/v1"; want upkeep.dev/v1alpha1`},
		},
		{
			scenario: "a missing apiVersion points at the document",
			files: map[string]string{"c.yaml": `# edge channel
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: 17.0.0
`},
			want: []string{`c.yaml:2:1: apiVersion: missing apiVersion; add apiVersion: upkeep.dev/v1alpha1`},
		},
		{
			scenario: "a missing kind points at the document, in its own file line",
			files: map[string]string{"c.yaml": `---
---
apiVersion: upkeep.dev/v1alpha1
metadata:
  name: edge
`},
			want: []string{`c.yaml:3:1: kind: missing kind; want one of ControlPlane, Channel, Group`},
		},
		{
			scenario: "an unknown kind in the wrong case suggests the right one",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: channel
metadata:
  name: edge
`},
			want: []string{`c.yaml:2:7: kind: unknown kind "channel"; did you mean Channel?`},
		},
		{
			scenario: "an unknown kind lists the known ones",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Deployment
`},
			want: []string{`c.yaml:2:7: kind: unknown kind "Deployment"; want one of ControlPlane, Channel, Group`},
		},
		{
			scenario: "a name with capitals and an underscore breaks the name pattern",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: EU_prod
spec:
  channel: stable/cloud
  timezone: UTC
`},
			want: []string{`g.yaml:4:9: metadata.name: got "EU_prod"; want lower-case letters, digits, '.' and '-', starting and ending with a letter or digit`},
		},
		{
			scenario: "a duplicate name across files points at the second and names the first",
			files: map[string]string{"z/more.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/cloud
spec:
  controlPlane: cloud
  version: 17.0.0
`},
			want: []string{`z/more.yaml:4:9: metadata.name: duplicate Channel name "stable/cloud": first defined at base.yaml:12:9; rename or remove one of them`},
		},
		{
			scenario: "a channel bound to an undefined control plane",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: clod
  version: 17.0.0
`},
			want: []string{`c.yaml:6:17: spec.controlPlane: control plane "clod" is not defined; define a ControlPlane with that name or use a defined one: cloud`},
		},
		{
			scenario: "a group on an undefined channel",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: us
spec:
  channel: stable/clod
  timezone: America/New_York
`},
			want: []string{`g.yaml:6:12: spec.channel: channel "stable/clod" is not defined; define a Channel with that name or use a defined one: stable/cloud`},
		},
		{
			scenario: "a version with two parts is not semver",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: "17.1"
`},
			want: []string{`c.yaml:7:12: spec.version: got "17.1"; want a semantic version MAJOR.MINOR.PATCH such as "17.2.3", or "none" to serve no version`},
		},
		{
			scenario: "an unquoted number as version is asked to be quoted",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: 17
`},
			want: []string{`c.yaml:7:12: spec.version: got 17; want a quoted version such as "17.2.3", or "none"`},
		},
		{
			scenario: "a version above the control plane points at the version",
			files: map[string]string{"channels/stable.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: v17.9.0
`},
			want: []string{`channels/stable.yaml:7:12: spec.version: "17.9.0" is above control plane "cloud" version 17.2.3`},
		},
		{
			scenario: "a version two majors below the control plane",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: old
spec:
  controlPlane: cloud
  version: 15.9.9
`},
			want: []string{`c.yaml:7:12: spec.version: "15.9.9" is below 16.0.0: agents may be at most one major version behind control plane "cloud" version 17.2.3`},
		},
		{
			scenario: "a version outside the control plane's agents constraint",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: strict
spec:
  version: 17.2.3
  agents: ">= 16.2.0"
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: strict
  version: 16.1.0
`},
			want: []string{`c.yaml:15:12: spec.version: "16.1.0" is outside control plane "strict" agents constraint ">= 16.2.0"`},
		},
		{
			scenario: "a following channel whose control plane breaks its own agents constraint points at follow",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: narrow
spec:
  version: 17.2.3
  agents: "< 17.0.0"
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: rolling
spec:
  controlPlane: narrow
  follow: controlPlane
`},
			want: []string{`c.yaml:15:11: spec.follow: "17.2.3" is outside control plane "narrow" agents constraint "< 17.0.0"`},
		},
		{
			scenario: "an agents constraint that does not parse is an error at the field, and its channels are not judged by it",
			files: map[string]string{"cp.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: broken
spec:
  version: 17.2.3
  agents: ">= banana"
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: broken
  version: 17.0.0
`},
			want: []string{`cp.yaml:7:11: spec.agents: invalid agents constraint: improper constraint: ">= banana"; want a semver constraint such as ">= 16.0.0, < 17.3.0"`},
		},
		{
			scenario: "a control plane without a semver version",
			files: map[string]string{"cp.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: other
spec:
  version: none
`},
			want: []string{`cp.yaml:6:12: spec.version: got "none"; want a semantic version MAJOR.MINOR.PATCH such as "17.2.3"`},
		},
		{
			scenario: "a channel with both version and follow",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: 17.0.0
  follow: controlPlane
`},
			want: []string{`c.yaml:8:11: spec.follow: set either version or follow, not both; remove one of them`},
		},
		{
			scenario: "a channel with neither version nor follow points at spec",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  critical: true
`},
			want: []string{`c.yaml:5:1: spec: set version (such as "17.2.3", or "none") or follow: controlPlane`},
		},
		{
			scenario: "follow takes only controlPlane",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  follow: latest
`},
			want: []string{`c.yaml:7:11: spec.follow: got "latest"; want controlPlane, the only value follow takes`},
		},
		{
			scenario: "a missing required field points at the enclosing key",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  version: 17.0.0
`},
			want: []string{`c.yaml:5:1: spec.controlPlane: required field is missing`},
		},
		{
			scenario: "a misspelt time zone",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Europe/Berln
`},
			want: []string{`g.yaml:7:13: spec.timezone: unknown time zone "Europe/Berln"; want an IANA name such as "Europe/Berlin", "America/New_York" or "UTC"`},
		},
		{
			scenario: "the server's Local time zone is refused",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Local
`},
			want: []string{`g.yaml:7:13: spec.timezone: got "Local", which depends on the server's settings; name the zone, such as "Europe/Berlin" or "UTC"`},
		},
		{
			scenario: "a window starting at 25:00",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  windows:
    - start: "25:00"
      duration: 2h
`},
			want: []string{`g.yaml:9:14: spec.windows[0].start: got "25:00"; want a time of day "HH:MM" from "00:00" to "23:59"`},
		},
		{
			scenario: "a window of zero length",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  windows:
    - start: "02:00"
      duration: 0m
`},
			want: []string{`g.yaml:10:17: spec.windows[0].duration: got "0m"; want a duration above 0 and at most 168h (one week)`},
		},
		{
			scenario: "a window of eight days",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  windows:
    - start: "02:00"
      duration: 4h
    - start: "02:00"
      duration: 192h
`},
			want: []string{`g.yaml:12:17: spec.windows[1].duration: got "192h"; want a duration above 0 and at most 168h (one week)`},
		},
		{
			scenario: "a duration without a unit",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  updateDuration: "30"
`},
			want: []string{`g.yaml:8:19: spec.updateDuration: got "30"; want a duration such as "15m" or "1h"`},
		},
		{
			scenario: "an update longer than every window",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  updateDuration: 3h
  windows:
    - start: "02:00"
      duration: 2h
`},
			want: []string{`g.yaml:8:19: spec.updateDuration: updateDuration 3h0m0s is longer than every window (the longest is 2h0m0s), so no window could ever be used; shorten it or lengthen a window`},
		},
		{
			scenario: "a day name that is not Mon..Sun",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  windows:
    - days: [Tue, Thursday]
      start: "02:00"
      duration: 2h
`},
			want: []string{`g.yaml:9:19: spec.windows[0].days[1]: got "Thursday"; want one of Mon, Tue, Wed, Thu, Fri, Sat, Sun`},
		},
		{
			scenario: "an unknown field inside a window",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  windows:
    - start: "02:00"
      duration: 2h
      end: "04:00"
`},
			want: []string{`g.yaml:11:7: spec.windows[0].end: unknown field; allowed here: days, start, duration`},
		},
		{
			scenario: "windows written as a mapping",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: UTC
  windows:
    start: "02:00"
`},
			want: []string{`g.yaml:9:5: spec.windows: got a mapping; want a list of windows`},
		},
		{
			scenario: "a freeze that ends before it starts",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  freezes:
    - name: year-end
      start: 2027-01-04
      end: 2026-12-20
`},
			want: []string{`g.yaml:11:12: spec.freezes[0].end: end "2026-12-20" does not come after start "2027-01-04"; fix the dates or swap them`},
		},
		{
			scenario: "a freeze time without a UTC offset",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  freezes:
    - name: launch
      start: 2026-03-01T08:00:00
      end: 2026-03-02
`},
			want: []string{`g.yaml:10:14: spec.freezes[0].start: got "2026-03-01T08:00:00"; want a date such as 2026-12-20 or an RFC 3339 time with an offset such as 2026-12-20T18:00:00+01:00`},
		},
		{
			scenario: "a date that is not in the calendar",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  freezes:
    - name: leap
      start: 2026-02-29
      end: 2026-03-02
`},
			want: []string{`g.yaml:10:14: spec.freezes[0].start: got "2026-02-29"; not a calendar date (day out of range)`},
		},
		{
			scenario: "two freezes of one group with the same name",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  freezes:
    - name: launch
      start: 2026-03-01
      end: 2026-03-02
    - name: launch
      start: 2026-04-01
      end: 2026-04-02
`},
			want: []string{`g.yaml:12:13: spec.freezes[1].name: duplicate freeze name "launch" (first is freezes[0]); give each freeze its own name`},
		},
		{
			scenario: "a repeated key is reported once, without CUE's conflict",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: 17.0.0
  version: 17.1.0
`},
			want: []string{`c.yaml:8:3: spec.version: duplicate key (first at line 7); remove one of them`},
		},
		{
			// yaml.v3 names the line where the broken block started.
			scenario: "bad YAML syntax takes the line from the YAML parser and keeps earlier documents",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: clod
  version: 17.0.0
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: broken
 spec:
`},
			want: []string{
				`c.yaml:6:17: spec.controlPlane: control plane "clod" is not defined; define a ControlPlane with that name or use a defined one: cloud`,
				`c.yaml:8: invalid YAML: did not find expected key`,
			},
		},
		{
			scenario: "a file with Windows or old Mac line endings gets the same positions",
			files: map[string]string{
				"crlf.yaml": "apiVersion: upkeep.dev/v1alpha1\r\nkind: Channel\r\nmetadata:\r\n  name: edge\r\nspec:\r\n  controlPlane: cloud\r\n  version: 17.9.0\r\n",
				"cr.yaml":   "apiVersion: upkeep.dev/v1alpha1\rkind: Channel\rmetadata:\r  name: edge2\rspec:\r  controlPlane: cloud\r  version: 17.9.0\r",
			},
			want: []string{
				`cr.yaml:7:12: spec.version: "17.9.0" is above control plane "cloud" version 17.2.3`,
				`crlf.yaml:7:12: spec.version: "17.9.0" is above control plane "cloud" version 17.2.3`,
			},
		},
		{
			scenario: "a document that is a list",
			files: map[string]string{"c.yaml": `- apiVersion: upkeep.dev/v1alpha1
  kind: Channel
`},
			want: []string{`c.yaml:1:1: document is a list; want a mapping with apiVersion, kind, metadata and spec`},
		},
		{
			scenario: "a custom YAML tag is refused for its document only",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec: !secret x
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge2
spec:
  controlPlane: clod
  version: 17.0.0
`},
			want: []string{
				`c.yaml:5: invalid YAML: cannot unmarshal tag "!secret"`,
				`c.yaml:12:17: spec.controlPlane: control plane "clod" is not defined; define a ControlPlane with that name or use a defined one: cloud`,
			},
		},
		{
			scenario: "a reference to a document that broke the schema is not also called dangling",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  version: 17.0.0
  typo: 1
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: edge-hosts
spec:
  channel: edge
  timezone: UTC
`},
			want: []string{`c.yaml:8:3: spec.typo: unknown field; allowed here: controlPlane, version, follow, critical, default, rollout`},
		},
		{
			scenario: "errors of two documents of one kind do not hide each other",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: one
spec:
  controlPlane: cloud
  version: 17.0.0
  extra: true
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: two
spec:
  version: 17.0.0
`},
			want: []string{
				`c.yaml:8:3: spec.extra: unknown field; allowed here: controlPlane, version, follow, critical, default, rollout`,
				`c.yaml:14:1: spec.controlPlane: required field is missing`,
			},
		},
		{
			scenario: "errors of several files come sorted by file, line and column",
			files: map[string]string{
				"b/second.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: second
spec:
  channel: nowhere
  timezone: Mars/Olympus
`,
				"a/first.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: first
spec:
  controlPlane: cloud
  version: 99.0.0
  critical: "yes"
`,
				"a/0.yml": `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 17.2.3
`,
			},
			want: []string{
				// The walk is lexical: a/0.yml comes before base.yaml.
				`a/first.yaml:8:13: spec.critical: got "yes"; want true or false`,
				`b/second.yaml:6:12: spec.channel: channel "nowhere" is not defined; define a Channel with that name or use a defined one: first, stable/cloud`,
				`b/second.yaml:7:13: spec.timezone: unknown time zone "Mars/Olympus"; want an IANA name such as "Europe/Berlin", "America/New_York" or "UTC"`,
				`base.yaml:4:9: metadata.name: duplicate ControlPlane name "cloud": first defined at a/0.yml:4:9; rename or remove one of them`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			_, errs := Load(fleet(tt.files))
			got := errorLines(errs)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}
