package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
)

// agentKey is the lock that serialises first reports, so that MaxAgents
// holds across replicas.
const agentKey = "agents"

// PutReport validates r and records it, with versions in canonical form, as
// its agent's latest report and in its history (bounded to
// HistoryPerAgent, the oldest pruned in the same transaction).
func (s *Store) PutReport(ctx context.Context, r report.Report, received time.Time) (isNew bool, err error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	// As report.Store.Put does.
	r.CurrentVersion = report.CanonicalVersion(r.CurrentVersion)
	r.TargetVersion = report.CanonicalVersion(r.TargetVersion)
	doc, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("encode the report of agent %s: %w", r.AgentID, err)
	}
	js := string(doc) // TEXT in SQLite, not a BLOB
	var failed any    // NULL keeps the agent's last failed version
	if (r.Outcome == report.OutcomeRolledBack || r.Outcome == report.OutcomeFailed) && r.TargetVersion != "" {
		failed = r.TargetVersion
	}
	at := s.d.ts(received)

	update := func(tx *sql.Tx) (int64, bool, error) {
		var seq int64
		err := tx.QueryRowContext(ctx, s.d.q(`UPDATE agents SET group_name = ?, channel = ?, current_version = ?,
			target_version = ?, health = ?, action = ?, outcome = ?, failed_version = COALESCE(?, failed_version),
			report = ?, received_at = ?, seq = seq + 1 WHERE agent_id = ? RETURNING seq`),
			r.Group, r.Channel, r.CurrentVersion, r.TargetVersion, r.Health, r.Action, r.Outcome, failed,
			js, at, r.AgentID).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, nil
		}
		return seq, err == nil, err
	}

	err = s.write(ctx, func(tx *sql.Tx) error {
		seq, known, err := update(tx)
		if err != nil {
			return err
		}
		if !known {
			// A first report: count under the lock, and look again in
			// case another replica recorded this agent meanwhile.
			if err := s.lock(ctx, tx, agentKey); err != nil {
				return err
			}
			if seq, known, err = update(tx); err != nil {
				return err
			}
		}
		if !known {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents`).Scan(&n); err != nil {
				return err
			}
			if n >= s.o.MaxAgents {
				return fmt.Errorf("%w: it holds the latest report of %d agents, its limit, so agent %s is not recorded; "+
					"stale agents are kept, not forgotten: raise the limit if the fleet is that large, or look for an "+
					"updater that makes up a new agent id on every run", fleet.ErrFull, s.o.MaxAgents, r.AgentID)
			}
			seq = 1
			if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO agents (agent_id, group_name, channel, current_version,
				target_version, health, action, outcome, failed_version, report, received_at, seq)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				r.AgentID, r.Group, r.Channel, r.CurrentVersion, r.TargetVersion, r.Health, r.Action, r.Outcome,
				failedString(failed), js, at, seq); err != nil {
				return err
			}
			isNew = true
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO agent_history (agent_id, seq, report, received_at) VALUES (?, ?, ?, ?)`),
			r.AgentID, seq, js, at); err != nil {
			return err
		}
		if seq > int64(s.o.HistoryPerAgent) {
			if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM agent_history WHERE agent_id = ? AND seq <= ?`),
				r.AgentID, seq-int64(s.o.HistoryPerAgent)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, fleet.ErrFull) {
			return false, err
		}
		return false, fmt.Errorf("record the report of agent %s in %s: %w", r.AgentID, s.url, err)
	}
	return isNew, nil
}

func failedString(v any) string {
	s, _ := v.(string)
	return s
}

// cutoff is the oldest received time that is not stale at now: an agent
// is stale when now - received_at > StaleAfter, as in report.Store.
func (s *Store) cutoff(now time.Time) any { return s.d.ts(now.Add(-s.o.StaleAfter)) }

// effHealth is the SQL of an agent's effective health; it takes the cutoff.
const effHealth = `CASE WHEN received_at < ? THEN 'stale' ELSE health END`

func (s *Store) decodeAgent(doc []byte, received time.Time, now time.Time) (report.Agent, error) {
	var a report.Agent
	if err := json.Unmarshal(doc, &a.Report); err != nil {
		return a, fmt.Errorf("decode the stored report: %w", err)
	}
	a.ReceivedAt = received
	a.Stale = now.Sub(received) > s.o.StaleAfter
	return a, nil
}

// Agent is one agent's latest report.
func (s *Store) Agent(ctx context.Context, id string, now time.Time) (report.Agent, bool, error) {
	var doc []byte
	var received time.Time
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT report, received_at FROM agents WHERE agent_id = ?`), id).
		Scan(&doc, timeCol{&received})
	if errors.Is(err, sql.ErrNoRows) {
		return report.Agent{}, false, nil
	}
	if err != nil {
		return report.Agent{}, false, fmt.Errorf("read agent %s from %s: %w", id, s.url, err)
	}
	a, err := s.decodeAgent(doc, received, now)
	return a, err == nil, err
}

// History is the agent's last reports, newest first (the latest one
// included), at most limit (0: all that are kept). Stale is not judged for
// past reports.
func (s *Store) History(ctx context.Context, id string, limit int) ([]report.Agent, error) {
	if limit <= 0 || limit > s.o.HistoryPerAgent {
		limit = s.o.HistoryPerAgent
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT report, received_at FROM agent_history WHERE agent_id = ?
		ORDER BY seq DESC LIMIT ?`), id, limit)
	if err != nil {
		return nil, fmt.Errorf("read the history of agent %s from %s: %w", id, s.url, err)
	}
	defer rows.Close()
	out := []report.Agent{}
	for rows.Next() {
		var doc []byte
		var received time.Time
		if err := rows.Scan(&doc, timeCol{&received}); err != nil {
			return nil, err
		}
		var a report.Agent
		if err := json.Unmarshal(doc, &a.Report); err != nil {
			return nil, fmt.Errorf("decode a stored report of agent %s: %w", id, err)
		}
		a.ReceivedAt = received
		out = append(out, a)
	}
	return out, rows.Err()
}

// where is the SQL condition of a filter, and its arguments.
func (s *Store) where(f report.Filter, now time.Time) (string, []any) {
	var conds []string
	var args []any
	switch f.Group {
	case "":
	case report.NoGroup:
		conds = append(conds, "group_name = ''")
	default:
		conds = append(conds, "group_name = ?")
		args = append(args, f.Group)
	}
	switch f.Health {
	case "":
	case report.HealthStale:
		conds = append(conds, "received_at < ?")
		args = append(args, s.cutoff(now))
	default:
		conds = append(conds, "health = ? AND received_at >= ?")
		args = append(args, f.Health, s.cutoff(now))
	}
	if len(conds) == 0 {
		return "1 = 1", nil
	}
	return strings.Join(conds, " AND "), args
}

// Fleet is one page of agents in (group, agent id) order, after the
// cursor, and the counts over every agent the filter selects (by GROUP BY,
// so memory is bounded by the page, not the fleet).
func (s *Store) Fleet(ctx context.Context, p fleet.Page, now time.Time) (fleet.FleetPage, error) {
	switch {
	case p.Limit < 0 || p.Limit > fleet.MaxPage:
		return fleet.FleetPage{}, fmt.Errorf("limit %d: a page holds 1 to %d agents (0 means %d)", p.Limit, fleet.MaxPage, fleet.MaxPage)
	case p.Limit == 0:
		p.Limit = fleet.MaxPage
	}
	out := fleet.FleetPage{Fleet: report.Fleet{
		Time: now.UTC(), StaleAfter: s.o.StaleAfter.String(), Agents: []report.Agent{},
		Counts: report.Counts{ByGroup: map[string]int{}, ByVersion: map[string]int{}, ByHealth: map[string]int{}, ByAction: map[string]int{}},
	}}
	cond, args := s.where(p.Filter, now)
	if p.Search != "" {
		// LOWER on both sides: SQLite's LIKE ignores ASCII case,
		// PostgreSQL's does not. A backslash escapes LIKE's wildcards.
		cond += ` AND LOWER(agent_id) LIKE ? ESCAPE '\'`
		args = append(args, "%"+likeEscaper.Replace(strings.ToLower(p.Search))+"%")
	}

	// The counts first: a page read after them can only hold agents that
	// reported since, which a reader expects more than missing ones.
	crow, err := s.db.QueryContext(ctx, s.d.q(`SELECT group_name, current_version, `+effHealth+`, action, COUNT(*)
		FROM agents WHERE `+cond+` GROUP BY 1, 2, 3, 4`), append([]any{s.cutoff(now)}, args...)...)
	if err != nil {
		return out, fmt.Errorf("count the fleet in %s: %w", s.url, err)
	}
	defer crow.Close()
	c := &out.Counts
	for crow.Next() {
		var group, version, health, action string
		var n int
		if err := crow.Scan(&group, &version, &health, &action, &n); err != nil {
			return out, err
		}
		c.Agents += n
		if health == report.HealthStale {
			c.Stale += n
		}
		c.ByGroup[cmp.Or(group, report.NoGroup)] += n
		c.ByVersion[cmp.Or(version, report.UnknownVersion)] += n
		c.ByHealth[health] += n
		c.ByAction[cmp.Or(action, report.NoDecision)] += n
	}
	if err := crow.Err(); err != nil {
		return out, err
	}
	crow.Close()

	// One more than the page, to know whether another follows.
	pargs := append(args, p.After.Group, p.After.AgentID, p.Limit+1)
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT report, received_at FROM agents
		WHERE `+cond+` AND (group_name, agent_id) > (?, ?) ORDER BY group_name, agent_id LIMIT ?`), pargs...)
	if err != nil {
		return out, fmt.Errorf("read the fleet from %s: %w", s.url, err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc []byte
		var received time.Time
		if err := rows.Scan(&doc, timeCol{&received}); err != nil {
			return out, err
		}
		if len(out.Agents) == p.Limit {
			last := out.Agents[len(out.Agents)-1]
			out.Next = &fleet.Cursor{Group: last.Group, AgentID: last.AgentID}
			break
		}
		a, err := s.decodeAgent(doc, received, now)
		if err != nil {
			return out, err
		}
		out.Agents = append(out.Agents, a)
	}
	return out, rows.Err()
}

// likeEscaper makes text match itself in a LIKE pattern whose escape
// character is a backslash.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Series counts agents by group, current version and effective health,
// folded beyond max exactly as report.Store.Series does.
func (s *Store) Series(ctx context.Context, max int, now time.Time) ([]report.Series, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT group_name, current_version, `+effHealth+`, COUNT(*)
		FROM agents GROUP BY 1, 2, 3`), s.cutoff(now))
	if err != nil {
		return nil, fmt.Errorf("count the series in %s: %w", s.url, err)
	}
	defer rows.Close()
	out := []report.Series{}
	for rows.Next() {
		var sr report.Series
		if err := rows.Scan(&sr.Group, &sr.Version, &sr.Health, &sr.Agents); err != nil {
			return nil, err
		}
		sr.Group, sr.Version = cmp.Or(sr.Group, report.NoGroup), cmp.Or(sr.Version, report.UnknownVersion)
		out = append(out, sr)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return foldSeries(out, max), nil
}

// foldSeries keeps the max largest series and folds the rest into one per
// health, labelled report.OtherLabel, sorted by labels.
func foldSeries(out []report.Series, max int) []report.Series {
	byLabels := func(a, b report.Series) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Health, b.Health))
	}
	if max > 0 && len(out) > max {
		slices.SortFunc(out, func(a, b report.Series) int { return cmp.Or(cmp.Compare(b.Agents, a.Agents), byLabels(a, b)) })
		folded := map[string]int{}
		for _, sr := range out[max:] {
			folded[sr.Health] += sr.Agents
		}
		out = out[:max]
		for h, n := range folded {
			out = append(out, report.Series{Group: report.OtherLabel, Version: report.OtherLabel, Health: h, Agents: n})
		}
	}
	slices.SortFunc(out, byLabels)
	return out
}

// AgentStates are the agents whose latest report names channel, or whose
// group is one of groups (report.NoGroup or "" for agents without one),
// in (group, agent id) order.
func (s *Store) AgentStates(ctx context.Context, channel string, groups []string, now time.Time) ([]fleet.AgentState, error) {
	var conds []string
	args := []any{s.cutoff(now)}
	if channel != "" {
		conds = append(conds, "channel = ?")
		args = append(args, channel)
	}
	if len(groups) > 0 {
		ph := make([]string, len(groups))
		for i, g := range groups {
			ph[i] = "?"
			if g == report.NoGroup {
				g = ""
			}
			args = append(args, g)
		}
		conds = append(conds, "group_name IN ("+strings.Join(ph, ", ")+")")
	}
	out := []fleet.AgentState{}
	if len(conds) == 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT agent_id, group_name, channel, current_version, `+effHealth+`,
		outcome, failed_version, received_at FROM agents WHERE `+strings.Join(conds, " OR ")+` ORDER BY group_name, agent_id`), args...)
	if err != nil {
		return nil, fmt.Errorf("read agent states from %s: %w", s.url, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a fleet.AgentState
		if err := rows.Scan(&a.AgentID, &a.Group, &a.Channel, &a.CurrentVersion, &a.Health, &a.Outcome,
			&a.FailedVersion, timeCol{&a.ReceivedAt}); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
