package kube

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels and annotations an operator sets on a Deployment or StatefulSet.
const (
	// LabelManaged: "true" marks a workload for upkeep. The cache only holds
	// workloads (and upkeep's schedule ConfigMaps) that carry it.
	LabelManaged = "upkeep.dev/managed"
	// AnnotationChannel names the release channel. Set it or AnnotationGroup:
	// without it the workload follows its group's channel, as the fleet
	// repository's Group says and the upkeep server answers.
	AnnotationChannel = "upkeep.dev/channel"
	// AnnotationGroup names the fleet group whose maintenance windows the
	// updater fetches from the upkeep server, and whose channel the workload
	// follows when AnnotationChannel is absent.
	AnnotationGroup = "upkeep.dev/group"
	// AnnotationContainer names the container to update; default the first.
	AnnotationContainer = "upkeep.dev/container"
	// AnnotationImage is the image repository to update from (no tag or
	// digest); default the repository of the container's current image.
	AnnotationImage = "upkeep.dev/image"
	// AnnotationSchedule chooses where the maintenance schedule comes from:
	// "group" (the upkeep server, saved in a ConfigMap beside the workload;
	// the default when AnnotationGroup is set), "agent" (the Secret
	// "<agent>-shared-state" that a Teleport agent writes; the default
	// otherwise) or "none" (no schedule: update as soon as the chain allows).
	AnnotationSchedule = "upkeep.dev/schedule"
	// AnnotationAgent is the agent name for "agent" schedules; default the
	// workload's name (Teleport's chart names the Secret after its release).
	AnnotationAgent = "upkeep.dev/agent"
	// AnnotationUpdateDuration overrides how long an update needs inside a
	// window (a Go duration such as 20m).
	AnnotationUpdateDuration = "upkeep.dev/update-duration"
	// AnnotationSkipReconcile: "true" makes the updater leave the workload
	// alone entirely (no decision, no write, no report).
	AnnotationSkipReconcile = "upkeep.dev/skip-reconcile"
	// AnnotationTrustPolicy names the trust policy (of the updater's
	// --trust-policy file) that the workload's images must satisfy,
	// overriding its channel's policy and the default. It can only choose
	// among the policies the updater's operator defined; whoever may edit
	// the workload may change its image anyway.
	AnnotationTrustPolicy = "upkeep.dev/trust-policy"
)

// State annotations the updater writes. Operators read them; they are
// upkeep's memory across restarts, so editing them by hand changes what it does.
const (
	statusPrefix = "status.upkeep.dev/"
	// AnnotationLastDecision is the last decision as JSON (Status).
	AnnotationLastDecision = statusPrefix + "last-decision"
	// AnnotationPreviousImage is the image the last update replaced, kept
	// for rollbacks and for operators.
	AnnotationPreviousImage = statusPrefix + "previous-image"
	// AnnotationSkipped is the skip list as JSON: versions rolled back
	// after a failed rollout, kept until the channel offers another.
	AnnotationSkipped = statusPrefix + "skipped"
	// AnnotationRollout is the rollout in progress as JSON (Rollout): set
	// with the image change, removed when it finishes or is rolled back.
	AnnotationRollout = statusPrefix + "rollout"
)

// Schedule sources (AnnotationSchedule values).
const (
	ScheduleFromGroup = "group"
	ScheduleFromAgent = "agent"
	ScheduleNone      = "none"
)

// TeleportScheduleKey is the key of the schedule in a Teleport agent's
// "<agent>-shared-state" Secret.
const TeleportScheduleKey = "agent-maintenance-schedule"

// ScheduleConfigMapKey is the key of upkeep's saved group schedule.
const ScheduleConfigMapKey = "schedule.json"

// ScheduleConfigMapName is the ConfigMap in a workload's namespace that
// keeps the group's last fetched schedule, so that a restarted updater with
// the server down still knows the windows.
func ScheduleConfigMapName(group string) string { return "upkeep-schedule-" + group }

// TeleportSecretName is the Secret where a Teleport agent writes its schedule.
func TeleportSecretName(agent string) string { return agent + "-shared-state" }

// Config is what a workload's annotations ask for.
type Config struct {
	// Channel is the annotated channel; "" when the workload follows its
	// group's channel, which the reconciler asks the server for.
	Channel        string
	Group          string
	Container      string // resolved: the named or the first container
	ContainerIndex int
	Image          Image  // the container's current image
	Repo           string // repository updates come from
	Schedule       string // ScheduleFrom* or ScheduleNone
	Agent          string
	UpdateDuration time.Duration // 0: the updater's default
	// TrustPolicy is the annotated trust policy; "" means the channel's
	// policy or the default (see TrustScope).
	TrustPolicy string
}

// TrustScope is what selects the trust policy of the workload's images:
// its annotated policy, else its channel's (as resolved, a group's channel
// included), else the updater's default.
func (c Config) TrustScope() TrustScope {
	return TrustScope{Policy: c.TrustPolicy, Channel: c.Channel}
}

// ConfigError is a workload's annotation an operator must fix; the updater
// reports it and leaves the workload alone.
type ConfigError struct {
	Annotation string
	Msg        string
}

func (e *ConfigError) Error() string {
	if e.Annotation == "" {
		return e.Msg
	}
	return "annotation " + e.Annotation + ": " + e.Msg
}

// ReadConfig reads a workload's upkeep annotations against its pod spec.
func ReadConfig(name string, ann map[string]string, spec *corev1.PodSpec) (Config, error) {
	c := Config{
		Channel: strings.TrimSpace(ann[AnnotationChannel]),
		Group:   strings.TrimSpace(ann[AnnotationGroup]),
		Agent:   strings.TrimSpace(ann[AnnotationAgent]),
	}
	if c.Channel == "" && c.Group == "" {
		return c, &ConfigError{"", fmt.Sprintf("set %s (the release channel to follow, e.g. stable/cloud) or %s (a fleet group, whose channel is followed)", AnnotationChannel, AnnotationGroup)}
	}
	if c.Channel != "" {
		if err := checkName(c.Channel, true); err != "" {
			return c, &ConfigError{AnnotationChannel, err}
		}
	}
	if c.Group != "" {
		if err := checkName(c.Group, false); err != "" {
			return c, &ConfigError{AnnotationGroup, err}
		}
	}
	if len(spec.Containers) == 0 {
		return c, &ConfigError{"", "the pod template has no containers"}
	}
	c.ContainerIndex = -1
	if want := strings.TrimSpace(ann[AnnotationContainer]); want != "" {
		names := make([]string, len(spec.Containers))
		for i, ct := range spec.Containers {
			names[i] = ct.Name
			if ct.Name == want {
				c.ContainerIndex = i
			}
		}
		if c.ContainerIndex < 0 {
			return c, &ConfigError{AnnotationContainer, fmt.Sprintf("no container %q in the pod template (containers: %s)", want, strings.Join(names, ", "))}
		}
	} else {
		c.ContainerIndex = 0
	}
	ct := spec.Containers[c.ContainerIndex]
	c.Container = ct.Name
	img, err := ParseImage(ct.Image)
	if err != nil {
		return c, &ConfigError{"", fmt.Sprintf("container %q: %v", ct.Name, err)}
	}
	c.Image = img
	c.Repo = img.Repo
	if r := strings.TrimSpace(ann[AnnotationImage]); r != "" {
		ri, err := ParseImage(r)
		if err != nil {
			return c, &ConfigError{AnnotationImage, err.Error()}
		}
		if ri.Tag != "" || ri.Digest != "" {
			return c, &ConfigError{AnnotationImage, fmt.Sprintf("%q: give the repository only, without a tag or digest (e.g. %s)", r, ri.Repo)}
		}
		c.Repo = ri.Repo
	}
	switch s := strings.TrimSpace(ann[AnnotationSchedule]); s {
	case "":
		c.Schedule = ScheduleFromAgent
		if c.Group != "" {
			c.Schedule = ScheduleFromGroup
		}
	case ScheduleFromGroup:
		if c.Group == "" {
			return c, &ConfigError{AnnotationSchedule, fmt.Sprintf("%q needs the annotation %s naming the group", s, AnnotationGroup)}
		}
		c.Schedule = s
	case ScheduleFromAgent, ScheduleNone:
		c.Schedule = s
	default:
		return c, &ConfigError{AnnotationSchedule, fmt.Sprintf("%q: want %q, %q or %q", s, ScheduleFromGroup, ScheduleFromAgent, ScheduleNone)}
	}
	if c.Agent == "" {
		c.Agent = name
	}
	if errs := validation.IsDNS1123Subdomain(TeleportSecretName(c.Agent)); len(errs) > 0 {
		return c, &ConfigError{AnnotationAgent, fmt.Sprintf("%q does not make a valid Secret name: %s", c.Agent, strings.Join(errs, "; "))}
	}
	if p := strings.TrimSpace(ann[AnnotationTrustPolicy]); p != "" {
		if !policyName(p) {
			return c, &ConfigError{AnnotationTrustPolicy, fmt.Sprintf("%q is not a trust policy name: lower-case letters, digits and '-', as in the updater's --trust-policy file", p)}
		}
		c.TrustPolicy = p
	}
	if d := strings.TrimSpace(ann[AnnotationUpdateDuration]); d != "" {
		v, err := time.ParseDuration(d)
		if err != nil || v <= 0 || v > 24*time.Hour {
			return c, &ConfigError{AnnotationUpdateDuration, fmt.Sprintf("%q: want a Go duration between 1s and 24h, such as 20m", d)}
		}
		c.UpdateDuration = v
	}
	return c, nil
}

// checkName checks a fleet repository name as the version server accepts
// it: segments of [a-z0-9.-], starting and ending with a letter or digit,
// joined by "/" when multi.
func checkName(s string, multi bool) string {
	what := "a group name: lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
	if multi {
		what = "a channel name: segments of lower-case letters, digits, '.' and '-' joined by '/', e.g. stable/cloud"
	}
	if len(s) > 200 {
		return fmt.Sprintf("%d bytes is too long for %s", len(s), what)
	}
	segs := strings.Split(s, "/")
	if !multi && len(segs) > 1 {
		return fmt.Sprintf("%q is not %s", s, what)
	}
	for _, seg := range segs {
		if seg == "" || !lowerAlnum(seg[0]) || !lowerAlnum(seg[len(seg)-1]) {
			return fmt.Sprintf("%q is not %s", s, what)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !lowerAlnum(c) && c != '.' && c != '-' {
				return fmt.Sprintf("%q is not %s", s, what)
			}
		}
	}
	return ""
}

func lowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func policyName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !lowerAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}
