package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/spec"
)

// route is a fixed name per route for the metrics: never the raw path, so
// that a scan of random URLs cannot grow the series.
type route int

const (
	routeVersion route = iota
	routeCritical
	routeChannels
	routeChannel
	routeGroups
	routeSchedule
	routeGroup
	routeStatus
	routeHealthz
	routeReadyz
	routeMetrics
	routeWebhook
	routeReports
	routeFleet
	routeAgent
	routeLeases
	routeRollouts
	routeRollout
	routeUnmatched
	numRoutes
)

var routeNames = [numRoutes]string{
	routeVersion:   "version",
	routeCritical:  "critical",
	routeChannels:  "channels",
	routeChannel:   "channel",
	routeGroups:    "groups",
	routeSchedule:  "schedule",
	routeGroup:     "group",
	routeStatus:    "status",
	routeHealthz:   "healthz",
	routeReadyz:    "readyz",
	routeMetrics:   "metrics",
	routeWebhook:   "webhook",
	routeReports:   "reports",
	routeFleet:     "fleet",
	routeAgent:     "agent",
	routeLeases:    "leases",
	routeRollouts:  "rollouts",
	routeRollout:   "rollout",
	routeUnmatched: "unmatched",
}

// codes are the status codes the server writes; anything else counts as "other".
var codes = [...]int{200, 202, 304, 400, 401, 404, 405, 409, 413, 500, 503}

const numCodes = len(codes) + 1

func codeIndex(code int) int {
	for i, c := range codes {
		if c == code {
			return i
		}
	}
	return len(codes)
}

// metrics holds every series' child up front: counting a request is an
// atomic add, with no label lookup or allocation. There is deliberately no
// latency histogram: the two clock reads it needs cost more than answering
// from precomputed bytes (on a VM without a fast clock, several times
// more); measure latency at the client or the load balancer instead.
type metrics struct {
	requests [numRoutes][numCodes]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b Backend) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upkeep_http_requests_total",
		Help: "HTTP requests answered, by route (a fixed name, not the path) and status code.",
	}, []string{"route", "code"})
	m := &metrics{}
	for r := range numRoutes {
		for i := range numCodes {
			code := "other"
			if i < len(codes) {
				code = strconv.Itoa(codes[i])
			}
			m.requests[r][i] = requests.WithLabelValues(routeNames[r], code)
		}
	}
	reg.MustRegister(requests, &snapshotCollector{b: b})
	return m
}

func (m *metrics) count(r route, code int) {
	m.requests[r][codeIndex(code)].Inc()
}

var (
	channelInfoDesc = prometheus.NewDesc("upkeep_channel_info",
		"One series per served channel: the version it offers (\"none\" for none), whether it is critical, its control plane.",
		[]string{"channel", "version", "critical", "control_plane"}, nil)
	revisionInfoDesc = prometheus.NewDesc("upkeep_served_revision_info",
		"The revision of the fleet repository being served.",
		[]string{"revision"}, nil)
)

// snapshotCollector reports the served snapshot at scrape time, so the
// series always match what updaters are told.
type snapshotCollector struct{ b Backend }

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- channelInfoDesc
	ch <- revisionInfoDesc
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Snapshot()
	if s == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(revisionInfoDesc, prometheus.GaugeValue, 1, s.Revision)
	for _, v := range s.Channels() {
		version := v.Version
		if version == "" {
			version = spec.NoVersion
		}
		ch <- prometheus.MustNewConstMetric(channelInfoDesc, prometheus.GaugeValue, 1,
			v.Name, version, strconv.FormatBool(v.Critical), v.ControlPlane)
	}
}
