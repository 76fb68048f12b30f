// Package report carries what updaters tell the version server after each
// pass, so operators can see rollout status and agent health at all times:
// the Report document and its strict validation, the server's in-memory
// Store of the latest report per agent (with staleness and summary counts),
// the bearer Tokens that authenticate reports, and the updaters' Client.
package report

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/health"
	"upkeep.dev/upkeep/spec"
)

// Kinds of updater.
const (
	KindHost       = "host"       // upkeep agent, beside a systemd unit
	KindKubernetes = "kubernetes" // upkeep kube-updater, beside a workload
)

// Health values, as the updater judged the agent.
const (
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
	HealthUnknown   = "unknown"
	// HealthStale is never sent: the Store shows it in counts and metrics
	// for an agent it has not heard from within its stale period.
	HealthStale = "stale"
)

// Outcomes of a pass's update (Report.Outcome); "" when it attempted none.
const (
	OutcomeUpdated    = "updated"    // the target is installed and settled healthy
	OutcomeRolledBack = "rolledBack" // the target proved bad; the previous version is back
	// OutcomeFailed: the update did not happen (an install refused, nothing
	// to restore) or its rollback failed too.
	OutcomeFailed = "failed"
)

// NoVersion is the target of a channel that offers no version (spec.NoVersion).
const NoVersion = "none"

// Field limits. They bound memory per agent (a report is at most a few KiB)
// and keep a hostile or broken updater from filling logs and pages.
const (
	MaxIDLength      = 253                // an FQDN fits
	MaxNameLength    = spec.MaxNameLength // group and channel names: the fleet repository's one limit
	MaxWorkloadLen   = 320                // "<namespace>/<kind>/<name>"
	MaxVersionLength = 64
	MaxReasonLength  = 64
	MaxMessageLength = 2048
	MaxErrorLength   = 4096
)

// Report is one updater's account of its latest pass. The JSON names are
// the wire format of POST /v1/reports.
type Report struct {
	// AgentID identifies the agent for as long as it exists (a machine id,
	// an FQDN, a pod's owner UID): letters, digits, '.', '_', ':' and '-',
	// starting with a letter or digit.
	AgentID string `json:"agentId"`
	// Group is the fleet repository's Group; "" for an agent that follows
	// a channel on a schedule of its own (a Kubernetes workload on its
	// Teleport agent's Secret), counted under NoGroup.
	Group   string `json:"group"`
	Channel string `json:"channel"` // the channel the updater follows
	Kind    string `json:"kind"`    // KindHost or KindKubernetes
	// Hostname is set for KindHost, Workload ("<namespace>/<kind>/<name>")
	// for KindKubernetes.
	Hostname string `json:"hostname,omitempty"`
	Workload string `json:"workload,omitempty"`
	// CurrentVersion is the version the agent runs, "" when not installed
	// or unknown. TargetVersion is the channel's, NoVersion, or "" when it
	// could not be fetched. Both are semver (a leading "v" is accepted and
	// dropped by the Store), which also bounds the metrics' version label.
	CurrentVersion string `json:"currentVersion"`
	TargetVersion  string `json:"targetVersion"`
	Health         string `json:"health"` // HealthHealthy, HealthUnhealthy or HealthUnknown
	// Action, Rule, Reason and Message are the pass's reconcile.Decision;
	// all empty when the pass failed before deciding (LastError says why).
	Action  string `json:"action"`
	Rule    string `json:"rule"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// LastError is what stopped the pass or failed in it, "" when none.
	LastError string `json:"lastError,omitempty"`
	// Outcome is how the pass's update ended: "updated", "rolledBack",
	// "failed", or "" when it attempted none.
	Outcome string `json:"outcome,omitempty"`
	// NextWindow is the start of the next maintenance window, if known.
	NextWindow     *time.Time `json:"nextWindow,omitempty"`
	UpdaterVersion string     `json:"updaterVersion"` // upkeep's own version
	Time           time.Time  `json:"time"`           // when the pass ran, by the updater's clock
}

// SetDecision copies a decision's outcome into the report.
func (r *Report) SetDecision(d reconcile.Decision) {
	r.Action, r.Rule, r.Reason, r.Message = string(d.Action), d.Rule, d.Reason, d.Message
}

// HealthOf maps an updater's health judgement to the report's Health.
func HealthOf(s health.Status) string {
	switch s {
	case health.Healthy:
		return HealthHealthy
	case health.Unhealthy:
		return HealthUnhealthy
	}
	return HealthUnknown
}

// FieldError is one field's problem, named by its JSON name.
type FieldError struct {
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError lists every problem of a report.
type ValidationError []FieldError

func (e ValidationError) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Error()
	}
	return "invalid report: " + strings.Join(parts, "; ")
}

var (
	actions = []string{
		string(reconcile.ActionUpdate), string(reconcile.ActionWait), string(reconcile.ActionNothing),
		string(reconcile.ActionRefuse), string(reconcile.ActionKeep),
	}
	rules = reconcile.RuleNames() // once: it builds a new slice per call
)

// Validate checks every field and returns a ValidationError naming each bad
// one, or nil.
func (r *Report) Validate() error {
	var errs ValidationError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	switch {
	case r.AgentID == "":
		bad("agentId", "required")
	case len(r.AgentID) > MaxIDLength:
		bad("agentId", "%d bytes, at most %d allowed", len(r.AgentID), MaxIDLength)
	case !validID(r.AgentID):
		bad("agentId", "%s: use letters, digits, '.', '_', ':' and '-', starting with a letter or digit", quote(r.AgentID))
	}
	if r.Group != "" {
		checkName(bad, "group", r.Group, false)
	}
	checkName(bad, "channel", r.Channel, true)

	switch r.Kind {
	case KindHost:
		checkToken(bad, "hostname", r.Hostname, MaxIDLength, true, "letters, digits, '.', '_' and '-'", isHostnameByte)
		if r.Workload != "" {
			bad("workload", "only for kind %q; a host reports its hostname", KindKubernetes)
		}
	case KindKubernetes:
		checkToken(bad, "workload", r.Workload, MaxWorkloadLen, true, "<namespace>/<kind>/<name> of letters, digits, '.', '_', ':', '-' and '/'", isWorkloadByte)
		if r.Hostname != "" {
			bad("hostname", "only for kind %q; a Kubernetes updater reports its workload", KindHost)
		}
	case "":
		bad("kind", "required: %q or %q", KindHost, KindKubernetes)
	default:
		bad("kind", "%s: want %q or %q", quote(r.Kind), KindHost, KindKubernetes)
	}

	if r.CurrentVersion != "" {
		if msg := checkVersion(r.CurrentVersion); msg != "" {
			bad("currentVersion", "%s", msg)
		}
	}
	if r.TargetVersion != "" && r.TargetVersion != NoVersion {
		if msg := checkVersion(r.TargetVersion); msg != "" {
			bad("targetVersion", "%s (or %q when the channel offers none)", msg, NoVersion)
		}
	}

	switch r.Health {
	case HealthHealthy, HealthUnhealthy, HealthUnknown:
	case "":
		bad("health", "required: %q, %q or %q", HealthHealthy, HealthUnhealthy, HealthUnknown)
	default:
		bad("health", "%s: want %q, %q or %q", quote(r.Health), HealthHealthy, HealthUnhealthy, HealthUnknown)
	}

	if r.Action == "" {
		// A pass that failed before deciding says so, and decided nothing.
		if r.LastError == "" {
			bad("action", "required unless lastError says why the pass made no decision: one of %s", strings.Join(actions, ", "))
		}
		if r.Rule != "" || r.Reason != "" || r.Message != "" {
			bad("action", "empty, but rule, reason or message is set: send the whole decision")
		}
	} else {
		if !slices.Contains(actions, r.Action) {
			bad("action", "%s: want one of %s", quote(r.Action), strings.Join(actions, ", "))
		}
		if !slices.Contains(rules, r.Rule) {
			bad("rule", "%s: want one of %s", quote(r.Rule), strings.Join(rules, ", "))
		}
	}
	if len(r.Reason) > MaxReasonLength {
		bad("reason", "%d bytes, at most %d allowed", len(r.Reason), MaxReasonLength)
	} else if !isCamelCase(r.Reason) {
		bad("reason", "%s: want a CamelCase word such as NotEnoughTimeLeft", quote(r.Reason))
	}
	checkText(bad, "message", r.Message, MaxMessageLength)
	checkText(bad, "lastError", r.LastError, MaxErrorLength)
	switch r.Outcome {
	case "", OutcomeUpdated, OutcomeRolledBack, OutcomeFailed:
	default:
		bad("outcome", "%s: want %q, %q, %q or empty (no update attempted)", quote(r.Outcome), OutcomeUpdated, OutcomeRolledBack, OutcomeFailed)
	}

	if r.NextWindow != nil {
		checkTime(bad, "nextWindow", *r.NextWindow)
	}
	checkToken(bad, "updaterVersion", r.UpdaterVersion, MaxVersionLength, true, "printable ASCII without spaces, such as 1.4.0 or devel", isVersionByte)
	checkTime(bad, "time", r.Time)

	if errs == nil {
		return nil
	}
	return errs
}

// CheckAgentID returns why id cannot identify an agent, or nil. Updaters
// can check a configured id when they start rather than at every report.
func CheckAgentID(id string) error {
	r := Report{AgentID: id}
	for _, fe := range validationErrors(r.Validate()) {
		if fe.Field == "agentId" {
			return fe
		}
	}
	return nil
}

func validationErrors(err error) ValidationError {
	ve, _ := err.(ValidationError)
	return ve
}

// CleanText makes free text fit a report field of limit bytes: invalid
// UTF-8 and control characters other than tab and newline become U+FFFD
// ("\r\n" becomes "\n"), and text over limit is cut at a rune boundary,
// ending " …". Command output is often long or not text; it should not
// cost the whole report.
func CleanText(s string, limit int) string {
	clean := true
	for _, c := range s {
		if isControl(c) || c == utf8.RuneError {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.Map(func(c rune) rune {
			if isControl(c) {
				return utf8.RuneError
			}
			return c
		}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	}
	if len(s) <= limit {
		return s
	}
	const mark = " …"
	if limit < len(mark) {
		return ""
	}
	cut := limit - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

func isControl(c rune) bool {
	return (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f || (c >= 0x80 && c < 0xa0)
}

// CanonicalVersion returns a version in the Store's form (semver without a
// leading "v"), or v unchanged when it is "", NoVersion or not semver.
func CanonicalVersion(v string) string {
	if v == "" || v == NoVersion {
		return v
	}
	sv, err := semver.StrictNewVersion(strings.TrimPrefix(v, "v"))
	if err != nil {
		return v
	}
	return sv.String()
}

// CompareVersions orders versions as operators read them: semantic
// versions by precedence, oldest first, then anything else ("", "unknown",
// a non-semver tag) after them, by text.
func CompareVersions(a, b string) int { return compareVersions(a, b, false) }

// CompareVersionsNewestFirst is CompareVersions with the semantic versions
// newest first; anything else still comes last.
func CompareVersionsNewestFirst(a, b string) int { return compareVersions(a, b, true) }

func compareVersions(a, b string, newestFirst bool) int {
	av, errA := semver.NewVersion(a)
	bv, errB := semver.NewVersion(b)
	switch {
	case errA == nil && errB == nil && newestFirst:
		return bv.Compare(av)
	case errA == nil && errB == nil:
		return av.Compare(bv)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func checkVersion(v string) string {
	if len(v) > MaxVersionLength {
		return fmt.Sprintf("%d bytes, at most %d allowed", len(v), MaxVersionLength)
	}
	if _, err := semver.StrictNewVersion(strings.TrimPrefix(v, "v")); err != nil {
		return fmt.Sprintf("%s is not a semantic version such as 17.2.3 or v17.2.3-rc.1", quote(v))
	}
	return ""
}

// checkName checks a fleet repository name: segments of [a-z0-9.-]
// starting and ending with a letter or digit, joined by "/" when multi.
func checkName(bad func(string, string, ...any), field, s string, multi bool) {
	switch {
	case s == "":
		bad(field, "required")
	case len(s) > MaxNameLength:
		bad(field, "%d bytes, at most %d allowed", len(s), MaxNameLength)
	case !validName(s, multi):
		if multi {
			bad(field, "%s is not a channel name: segments of lower-case letters, digits, '.' and '-' joined by '/', such as stable/cloud", quote(s))
		} else {
			bad(field, "%s is not a group name: lower-case letters, digits, '.' and '-', starting and ending with a letter or digit", quote(s))
		}
	}
}

func checkToken(bad func(string, string, ...any), field, s string, max int, required bool, want string, ok func(byte) bool) {
	if s == "" {
		if required {
			bad(field, "required: %s", want)
		}
		return
	}
	if len(s) > max {
		bad(field, "%d bytes, at most %d allowed", len(s), max)
		return
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			bad(field, "%s: want %s", quote(s), want)
			return
		}
	}
}

// checkText allows any UTF-8 but control characters other than tab and
// newline, which could forge log lines or terminal output.
func checkText(bad func(string, string, ...any), field, s string, max int) {
	switch {
	case len(s) > max:
		bad(field, "%d bytes, at most %d allowed", len(s), max)
	case !utf8.ValidString(s):
		bad(field, "not valid UTF-8")
	default:
		for _, c := range s {
			if isControl(c) {
				bad(field, "holds control character %U", c)
				return
			}
		}
	}
}

var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

func checkTime(bad func(string, string, ...any), field string, t time.Time) {
	switch {
	case t.IsZero():
		bad(field, "required: an RFC 3339 time such as 2026-03-28T12:00:00Z")
	case t.Before(minTime) || t.After(maxTime):
		bad(field, "%s is outside 2000..9999; is the updater's clock set?", t.UTC().Format(time.RFC3339))
	}
}

func validID(s string) bool {
	if !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

func validName(s string, multi bool) bool {
	return spec.ValidName(s, multi) // the loader's rule, so what validates is accepted
}

func isCamelCase(s string) bool {
	if s == "" {
		return true
	}
	if !(s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }
func isHostnameByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '-'
}
func isWorkloadByte(c byte) bool { return isHostnameByte(c) || c == ':' || c == '/' }
func isVersionByte(c byte) bool  { return c > 0x20 && c < 0x7f }

// quote quotes an untrusted value for an error: at most 64 bytes, escaped,
// so a hostile value cannot forge log lines or flood a response.
func quote(s string) string { return quoteMax(s, 64) }

func quoteMax(s string, max int) string {
	if len(s) <= max {
		return fmt.Sprintf("%+q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%+q… (%d bytes)", s[:cut], len(s))
}

// errTrailing is returned by Decode for data after the report's object.
var errTrailing = errors.New("data after the report's JSON object: send exactly one object")
