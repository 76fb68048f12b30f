package diff

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"upkeep.dev/upkeep/reconcile/calendar"
)

// MarkdownLimit is the longest markdown Markdown writes: GitHub refuses
// comments over 65,536 characters. It is counted in bytes, which is never
// fewer than characters.
const MarkdownLimit = 65536

// Markdown writes the report as a pull-request comment: a heading, the
// summary, a table per kind of object and head's errors in a fenced block.
// A report over MarkdownLimit is cut at a line and says so.
func Markdown(w io.Writer, r *Report) error {
	var b bytes.Buffer
	writeMarkdown(&b, r)
	_, err := w.Write(truncateMarkdown(b.Bytes(), MarkdownLimit))
	return err
}

func writeMarkdown(b *bytes.Buffer, r *Report) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	p("### upkeep diff: %s", md(sidesTitle(r)))
	p("")
	if r.Fleet != nil {
		p("**%s.**", md(capitalize(r.Fleet.Summary)))
		p("")
	}
	if r.Summary.HeadErrors > 0 {
		p(":x: **%s**", md(r.Summary.Text))
	} else {
		p("**%s**", md(capitalize(r.Summary.Text)))
	}
	if len(r.BaseErrors) > 0 {
		p("")
		p("> [!WARNING]")
		p("> Base is itself invalid (%s); compared anyway.", plural(len(r.BaseErrors), "error"))
	}

	if len(r.ControlPlanes) > 0 {
		p("")
		p("#### Control planes")
		p("")
		p("| Control plane | Change | Version | Movement | Agents | Channels made invalid |")
		p("|---|---|---|---|---|---|")
		for _, d := range r.ControlPlanes {
			var version, agents string
			switch d.Change {
			case Added:
				version, agents = d.Head.Version, orNone(d.Head.Agents)
			case Removed:
				version, agents = d.Base.Version, orNone(d.Base.Agents)
			default:
				version = arrow(d.Base.Version, d.Head.Version)
				agents = arrow(orNone(d.Base.Agents), orNone(d.Head.Agents))
			}
			var invalid []string
			for _, inv := range d.Invalidated {
				invalid = append(invalid, fmt.Sprintf("%s %s: %s", code(inv.Channel), md(inv.Version), md(inv.Reason)))
			}
			p("| %s | %s | %s | %s | %s | %s |", code(d.Name), d.Change, md(version), movementCell(d.Change, d.Movement), md(agents), strings.Join(invalid, "<br>"))
		}
	}

	if len(r.Channels) > 0 {
		p("")
		p("#### Channels")
		p("")
		p("| Channel | Change | Version | Movement | Critical | Mode | Notes |")
		p("|---|---|---|---|---|---|---|")
		for _, d := range r.Channels {
			var version, critical, mode string
			var notes []string
			switch d.Change {
			case Added:
				version, critical, mode = versionOf(d.Head), yesNo(d.Head.Critical), modeOf(d.Head)
				notes = append(notes, "control plane "+code(d.Head.ControlPlane))
				if d.Head.Rollout != "" {
					notes = append(notes, "rollout: "+md(d.Head.Rollout))
				}
			case Removed:
				version, critical, mode = versionOf(d.Base), yesNo(d.Base.Critical), modeOf(d.Base)
			default:
				version = arrow(versionOf(d.Base), versionOf(d.Head))
				critical = arrow(yesNo(d.Base.Critical), yesNo(d.Head.Critical))
				mode = arrow(modeOf(d.Base), modeOf(d.Head))
				if d.Cause != "" {
					notes = append(notes, md(d.Cause))
				}
				if d.Base.ControlPlane != d.Head.ControlPlane {
					notes = append(notes, "control plane "+md(arrow(d.Base.ControlPlane, d.Head.ControlPlane)))
				}
				if !d.ModeSwitched && !d.Head.Follow && d.Base.Pinned != d.Head.Pinned && d.Movement == Same {
					notes = append(notes, "pin "+md(arrow(d.Base.Pinned, d.Head.Pinned)))
				}
				if d.RolloutChanged {
					notes = append(notes, "rollout: "+md(arrow(orNone(d.Base.Rollout), orNone(d.Head.Rollout))))
				}
				if d.Change == Unchanged {
					notes = append(notes, "now invalid")
				}
			}
			if d.CriticalToggled {
				critical = "**" + critical + "**"
			}
			switch base, head := d.Base != nil && d.Base.Default, d.Head != nil && d.Head.Default; {
			case head && !base:
				notes = append(notes, "answers as Teleport's default channel")
			case base && !head:
				notes = append(notes, "no longer Teleport's default channel")
			}
			for _, e := range d.Violations {
				notes = append(notes, ":x: "+md(e.Error()))
			}
			p("| %s | %s | %s | %s | %s | %s | %s |", code(d.Name), d.Change, md(version), movementCell(d.Change, d.Movement), critical, md(mode), strings.Join(notes, "<br>"))
		}
	}

	if len(r.Groups) > 0 {
		p("")
		p("#### Groups")
		p("")
		p("| Group | Change | What changed | Next windows before | Next windows after |")
		p("|---|---|---|---|---|")
		for _, d := range r.Groups {
			var what []string
			switch d.Change {
			case Added:
				what = append(what, "channel "+code(d.Head.Channel), "timezone "+md(d.Head.Timezone),
					"windows: "+md(listOrNone(d.Head.Windows)))
				if len(d.Head.Freezes) > 0 {
					what = append(what, "freezes: "+md(listOrNone(d.Head.Freezes)))
				}
			case Removed:
				what = append(what, "was on channel "+code(d.Base.Channel))
			default:
				for _, f := range d.Fields {
					what = append(what, f+": "+md(arrow(groupField(d.Base, f), groupField(d.Head, f))))
				}
			}
			before, after := "", ""
			if showsSchedule(d) {
				if d.Base != nil {
					before = mdWindows(d.Base.Timezone, d.NextBefore, d.BeforeRule)
				}
				if d.Head != nil {
					after = mdWindows(d.Head.Timezone, d.NextAfter, d.AfterRule)
				}
			}
			p("| %s | %s | %s | %s | %s |", code(d.Name), d.Change, strings.Join(what, "<br>"), before, after)
		}
	}

	if r.Fleet != nil {
		writeMarkdownFleet(b, r.Fleet)
	}

	if len(r.Updaters) > 0 {
		p("")
		p("#### Updaters right after the merge")
		p("")
		p("Healthy agents on base's version, by the same decision chain the updaters run.")
		p("")
		p("| Group | Channel | Version | Action | Rule | Why |")
		p("|---|---|---|---|---|---|")
		for _, u := range r.Updaters {
			p("| %s | %s | %s | %s | %s | %s |", code(u.Group), code(u.Channel), md(arrow(orNone(u.Current), u.Target)),
				md(actionText(u)), md(u.Rule+"/"+u.Reason), md(u.Message))
		}
	}

	if len(r.HeadErrors) > 0 && r.Summary.Changed {
		p("")
		p("#### Updaters right after the merge")
		p("")
		p("No change: %s.", invalidHeadNote)
	}

	if len(r.HeadErrors) > 0 {
		p("")
		p("#### Errors in head (%d)", len(r.HeadErrors))
		p("")
		lines := make([]string, len(r.HeadErrors))
		for i, e := range r.HeadErrors {
			lines[i] = e.Error()
		}
		body := strings.Join(lines, "\n")
		fence := fenceFor(body)
		p("%s", fence)
		p("%s", body)
		p("%s", fence)
	}
}

func mdWindows(tz string, ivs []calendar.Interval, rule *ScheduleRule) string {
	var out []string
	switch {
	case rule != nil:
		out = append(out, md(ruleText(rule, len(ivs) > 0)))
	case len(ivs) == 0:
		return "none within " + horizonText
	}
	for _, iv := range ivs {
		out = append(out, md(formatInterval(iv, tz)))
	}
	return strings.Join(out, "<br>")
}

func movementCell(c Change, m Movement) string {
	if c != Modified || m == Same {
		return ""
	}
	if m == MajorJump || m == Downgrade || m == Withdrawn {
		return "**" + string(m) + "**"
	}
	return string(m)
}

// md escapes text for a markdown table cell: every ASCII punctuation that
// markdown or a table gives meaning to is backslash-escaped.
func md(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>|#~!", r) {
			b.WriteByte('\\')
		}
		if r == '\n' {
			b.WriteString("<br>")
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// code is a name in a code span; names never hold backticks or pipes.
func code(s string) string { return "`" + s + "`" }

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// fenceFor returns a backtick fence longer than any run of backticks in body.
func fenceFor(body string) string {
	longest, run := 0, 0
	for _, r := range body {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// truncateMarkdown cuts md at a line boundary so that, with a closing fence
// if the cut falls inside a fenced block and a note saying it was cut, it
// fits in limit bytes.
func truncateMarkdown(doc []byte, limit int) []byte {
	if len(doc) <= limit {
		return doc
	}
	note := fmt.Sprintf("\n_This report was cut: it is %d characters, over GitHub's %d-character comment limit. Run `upkeep diff` locally for all of it._\n", len(doc), limit)
	// Room for the note and a closing fence as long as any fence we write.
	budget := limit - len(note) - 64
	cut := bytes.LastIndexByte(doc[:budget], '\n') + 1
	kept := doc[:cut]
	var open string
	for _, line := range strings.Split(string(kept), "\n") {
		if strings.HasPrefix(line, "```") && strings.Trim(line, "`") == "" {
			if open == "" {
				open = line
			} else if line == open {
				open = ""
			}
		}
	}
	out := append([]byte{}, kept...)
	if open != "" {
		out = append(out, open+"\n"...)
	}
	return append(out, note...)
}

// writeMarkdownFleet writes the agents merging moves: a table per channel,
// its rows in rollout-stage order.
func writeMarkdownFleet(b *bytes.Buffer, f *FleetImpact) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	p("")
	p("#### Agents")
	p("")
	p("From %s at %s.", code(f.Server), md(f.Time.Format("2006-01-02 15:04 MST")))
	if f.NotBase {
		p("")
		p("> [!NOTE]")
		p("> %s.", md(capitalize(strings.TrimPrefix(notBaseNote(f), "note: "))))
	}
	for _, c := range f.Channels {
		p("")
		p("%s", strings.Replace(md(channelLine("\x00", c)), "\x00", "**"+code(c.Name)+"**", 1)+".")
		p("")
		p("| Stage | Group | Agents | By version | Move | First usable window |")
		p("|---|---|---|---|---|---|")
		for _, s := range c.Stages {
			for _, g := range s.Groups {
				p("| %s | %s | %s | %s | %s | %s |", md(stageTitle(c, s)), code(g.Name), thousands(g.Agents), md(versionCounts(g.ByVersion)),
					thousands(g.Moving), md(whenText(g)))
			}
		}
		if u := c.Other; u != nil {
			p("| | _no group_ | %s | %s | %s | their own schedules |", thousands(u.Agents), md(versionCounts(u.ByVersion)), thousands(u.Moving))
		}
	}
}
