// Package rollout is the rollout engine of `upkeep serve`: it moves a
// channel's new version through its stages (canaries, then every agent of
// the stage, with bake times and thresholds) one named step at a time, and
// answers each agent the version its stage and canary status allow.
//
// Three parts, from the inside out:
//
//   - Next is the pure step function: desired state, stored rollout,
//     agents and the time in; at most one transition out. Halt and Resume
//     are the operator's steps.
//   - Answer is the immutable table the version server consults on every
//     request (a map lookup, no allocation); Answers holds one per channel.
//   - Engine runs on every replica: it takes the store's leader lease and,
//     while it leads, evaluates every channel each tick and writes each step
//     compare-and-swap. Cache re-reads the rollouts on every replica and
//     publishes the answer tables, so all replicas answer alike.
//
// Every transition carries a rule (the list is Rules), a CamelCase reason
// and a human message; see docs/design/2026-12-03-rollouts.md.
package rollout
