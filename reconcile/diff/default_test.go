package diff

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/spec"
)

// Moving Teleport's "default" channel from one channel to another is a
// change diff shows, in text and JSON.
func TestDiffShowsTheDefaultChannel(t *testing.T) {
	state := func(def string) *spec.State {
		return &spec.State{
			ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: "17.4.2"}},
			Channels: []*spec.Channel{
				{Name: "edge", ControlPlane: "cloud", Version: "17.4.0", Default: def == "edge"},
				{Name: "stable", ControlPlane: "cloud", Version: "17.3.0", Default: def == "stable"},
			},
		}
	}
	r := Compare(state("stable"), state("edge"), nil, time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	var text bytes.Buffer
	if err := Text(&text, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"~ edge", "Teleport's default channel: no → yes", "~ stable", "Teleport's default channel: yes → no"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var md bytes.Buffer
	if err := Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"answers as Teleport's default channel", "no longer Teleport's default channel"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"default":true`) {
		t.Errorf("JSON does not say which channel is the default: %s", js)
	}
}
