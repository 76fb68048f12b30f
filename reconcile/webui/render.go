package webui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/report"
)

// viewNames are the pages; each is templates/<name>.html defining
// "content", inside templates/layout.html.
var viewNames = []string{"login", "problem", "overview", "rollout", "group", "agents", "agent"}

type views struct {
	byName map[string]*template.Template
}

func parseViews() (*views, error) {
	base, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("fleet page templates: %w", err)
	}
	v := &views{byName: map[string]*template.Template{}}
	for _, name := range viewNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("fleet page template %s: %w", name, err)
		}
		v.byName[name] = t
	}
	return v, nil
}

// render writes view's whole page, or its content alone for the
// auto-refresh. The page is rendered into a buffer first, so a template
// error is a clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, view string, p page) {
	t := h.views.byName[view]
	name := "layout.html"
	if r.Header.Get(FragmentHeader) == "1" {
		name = "content"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, p); err != nil {
		h.log.Error("fleet page: rendering failed", "view", view, "error", err)
		h.plain(w, http.StatusInternalServerError, "the page could not be rendered; see the server log")
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Vary", FragmentHeader+", Cookie")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

var funcs = template.FuncMap{
	// utc formats an instant for every page the same way.
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"local": func(t time.Time, loc *time.Location) string {
		return t.In(loc).Format("Mon 02 Jan 15:04 MST")
	},
	"localTime": func(t time.Time, loc *time.Location) string { return t.In(loc).Format("15:04") },
	"ago":       ago,
	"until": func(now, t time.Time) string {
		if !t.After(now) {
			return "now"
		}
		return span(t.Sub(now))
	},
	"span":      span,
	"pct":       func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
	"f1":        func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"add":       func(a, b int) int { return a + b },
	"sub":       func(a, b float64) float64 { return a - b },
	"addf":      func(a, b float64) float64 { return a + b },
	"agentPath": func(id string) string { return "/ui/agents/" + url.PathEscape(id) },
	"groupPath": func(g string) string {
		if g == "" || g == report.NoGroup {
			return ""
		}
		return "/ui/groups/" + url.PathEscape(g)
	},
	// Channel names hold "/" between segments of [a-z0-9.-]: a path as they are.
	"rolloutPath": func(ch string) string { return "/ui/rollouts/" + ch },
	"orNone":      func(s string) string { return orDash(s) },
	"joinGroups":  func(gs []string) string { return strings.Join(gs, ", ") },
	"healthClass": func(h string) string { return "h-" + h },
	"stateClass":  func(s string) string { return "s-" + strings.ToLower(s) },
	"dur":         func(d time.Duration) string { return span(d) },
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// ago is how long before now t was, coarsely.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + span(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return span(d) + " ago"
}

// span is a duration as an operator reads it: "2h 5m", "3d 4h", "40s".
func span(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm %ds", m, s)
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd %dh", days, h)
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
