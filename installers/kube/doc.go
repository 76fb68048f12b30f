// Package kube is the Kubernetes updater: a controller-runtime manager that
// keeps Deployments and StatefulSets marked for upkeep on their channel's
// version, pinned to a cosign-verified digest, and only when it is safe to
// restart them. `upkeep kube-updater` (build tag kube) runs it; the host
// binary never imports this package.
//
// # What a workload carries
//
// The label upkeep.dev/managed: "true" and the annotations
// upkeep.dev/channel and/or upkeep.dev/group (one is required; a workload
// with a group alone follows the group's channel), upkeep.dev/container,
// upkeep.dev/image, upkeep.dev/schedule, upkeep.dev/agent,
// upkeep.dev/update-duration and upkeep.dev/skip-reconcile (see config.go).
// The updater keeps its memory in annotations under status.upkeep.dev/:
// last-decision (JSON Status: the chain's action, rule, reason and message,
// the next window, and what was done), previous-image, skipped (the skip
// list) and rollout (the rollout being followed).
//
// # A pass
//
// The current version is the container image's tag (a non-semver tag or a
// digest-only image is unknown, and unknown is updated). Target and critical
// come from the version server through a cache that asks once per channel
// per poll interval (and once per group for the channel of a workload
// annotated with a group alone); a poller enqueues the workloads of a
// channel or group whose answer changed. The schedule comes from the upkeep server for the
// group (saved in ConfigMap upkeep-schedule-<group> beside the workload, so
// a restart with the server down keeps it) or from the Teleport agent's
// Secret <agent>-shared-state, key agent-maintenance-schedule. Health comes
// from the pods (none, or one not Ready for longer than the grace period, is
// unhealthy; terminating pods are ignored). reconcile.Decide decides.
//
// Before any change, <image>:<version> is resolved to a digest and its
// signature verified (ImageVerifier); the workload gets
// repo:tag@sha256:<digest>. A failed verification changes nothing but the
// status annotation, and emits a Warning Event naming the cause. After a
// change the rollout is followed; if it is not done within the deadline the
// previous image is restored and the version skipped. A StatefulSet stuck on
// an unhealthy pod of the old revision is unblocked by deleting that pod.
//
// # Choices
//
//   - Writes: the image change is a strategic merge patch carrying the
//     resourceVersion it was computed from (optimistic concurrency); a
//     Conflict is retried from a fresh read with client-go's
//     retry.RetryOnConflict, and abandoned if the image changed meanwhile.
//     A patch, not an Update, so fields newer than this client's API types
//     are never dropped; not server-side apply, because taking ownership of
//     the image field would make every later write have to repeat it.
//     State annotations are JSON merge patches of just those keys, written
//     only when the decision changes (field manager upkeep-kube-updater).
//   - Cache: only labelled Deployments, StatefulSets and ConfigMaps, in the
//     configured namespace or all. Pods are listed from the API server by
//     the workload's selector (one LIST per pass): pods carry none of
//     upkeep's labels, and caching every pod of the watched namespaces
//     would cost far more memory than the list costs requests. Teleport's
//     Secret is read the same way (one GET per pass, only for agent
//     schedules), so the updater never holds Secrets in memory.
//   - The updater's own annotation writes do not trigger passes (a
//     predicate drops updates that change only status.upkeep.dev/
//     annotations); requeues follow the decision's recheck time, bounded by
//     the interval and at least one second apart, so nothing busy-loops.
//   - A schedule counts as unusable only after UnusableThreshold checks at
//     least ScheduleRecheck apart: a watch event right after a check is the
//     same check again, so the threshold spans time as it does on a host.
//   - Identity and leases: targets are asked as each workload (headers
//     Upkeep-Agent-Id: its UID, Upkeep-Group: its group), since a rollout
//     answers each agent by its stage and canary status; they are cached
//     per workload, the critical flag per channel. When the chain says
//     Update, a concurrency lease is asked (POST /v1/leases) and the chain
//     decides again with the answer (a refusal is ConcurrencyLimit); the
//     lease is given back when the rollout completes, is rolled back or
//     superseded, or when no rollout starts (a refused image). The rollout
//     annotation carries it across restarts; a dead updater's lease expires.
//   - Reports (POST /v1/reports) are sent when the decision or outcome
//     changes and at least once per interval, once the workload's channel
//     is known (a workload without a group counts under _none); the agent
//     id is the workload's UID, and outcome says how an update ended.
//   - The apply step is a state machine across passes (the rollout
//     annotation is its journal) rather than reconcile/apply's blocking
//     Apply: a controller must not hold a worker for the whole rollout.
//     The skip list uses reconcile/apply's Skip and PruneSkipped.
package kube
