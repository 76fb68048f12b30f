package webui_test

import (
	"strings"
	"testing"
	"time"
)

// The group page shows the windows the server publishes (schedule.Publish):
// inside a freeze longer than the 14-day horizon, the first window after
// it, as GET /v1/groups/<g> names it, not "no window".
func TestGroupPageInALongFreezeShowsTheFirstWindowAfterIt(t *testing.T) {
	inFreeze := time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC) // year-end: 19 Dec to 4 Jan
	e := newEnv(t, envOptions{now: func() time.Time { return inFreeze }})
	a := e.do(t, "GET", "/ui/groups/eu-prod", nil, "Cookie", "session")
	if a.code != 200 {
		t.Fatalf("GET: %d\n%s", a.code, a.body)
	}
	for _, want := range []string{`next window Tue 05 Jan 02:00 CET – 06:00`, `first usable (fits 30m): Tue 05 Jan 02:00 CET`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	api := e.do(t, "GET", "/v1/groups/eu-prod", nil)
	if !strings.Contains(api.body, `"next":{"start":"2027-01-05T01:00:00Z"`) {
		t.Errorf("the JSON API names another next window: %s", api.body)
	}
}
