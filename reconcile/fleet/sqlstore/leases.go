package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
)

// AcquireLease grants, renews or refuses a place among the group's
// updating agents, in one transaction that holds the group's lock, so
// replicas deciding at once never grant more than Max. Leases expired at
// now are dropped first and logged LeaseExpired at their expiry time.
func (s *Store) AcquireLease(ctx context.Context, req fleet.LeaseRequest, now time.Time) (fleet.LeaseGrant, error) {
	switch {
	case req.AgentID == "":
		return fleet.LeaseGrant{}, errors.New("acquire lease: no agent id")
	case req.TTL <= 0:
		return fleet.LeaseGrant{}, fmt.Errorf("acquire lease for agent %s: TTL %s, want a positive duration", req.AgentID, req.TTL)
	case req.Max < 0:
		return fleet.LeaseGrant{}, fmt.Errorf("acquire lease for agent %s: max %d, want 0 (unlimited) or more", req.AgentID, req.Max)
	}
	group := cmp.Or(req.Group, report.NoGroup)
	now = micro(now)
	l := fleet.Lease{Group: group, AgentID: req.AgentID, Channel: req.Channel, Version: req.Version,
		AcquiredAt: now, ExpiresAt: micro(now.Add(req.TTL))}
	var g fleet.LeaseGrant
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.lock(ctx, tx, "lease/"+group); err != nil {
			return err
		}
		if err := s.expire(ctx, tx, group, "", now); err != nil {
			return err
		}
		var acquired time.Time
		err := tx.QueryRowContext(ctx, s.d.q(`SELECT acquired_at FROM leases WHERE group_name = ? AND agent_id = ?`),
			group, req.AgentID).Scan(timeCol{&acquired})
		switch {
		case err == nil: // the agent's own: renew it
			l.AcquiredAt = acquired
			if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE leases SET channel = ?, version = ?, expires_at = ?
				WHERE group_name = ? AND agent_id = ?`), l.Channel, l.Version, s.d.ts(l.ExpiresAt), group, l.AgentID); err != nil {
				return err
			}
			g.Granted = true
			if err := s.logLease(ctx, tx, group, l.AgentID, fleet.LeaseRenewed, now); err != nil {
				return err
			}
		case errors.Is(err, sql.ErrNoRows):
			var n int
			if err := tx.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*) FROM leases WHERE group_name = ?`), group).Scan(&n); err != nil {
				return err
			}
			if req.Max == 0 || n < req.Max {
				if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO leases (group_name, agent_id, channel, version, acquired_at, expires_at)
					VALUES (?, ?, ?, ?, ?, ?)`), group, l.AgentID, l.Channel, l.Version, s.d.ts(l.AcquiredAt), s.d.ts(l.ExpiresAt)); err != nil {
					return err
				}
				g.Granted = true
				if err := s.logLease(ctx, tx, group, l.AgentID, fleet.LeaseAcquired, now); err != nil {
					return err
				}
			}
		default:
			return err
		}
		return tx.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*), MIN(expires_at) FROM leases WHERE group_name = ?`), group).
			Scan(&g.Holders, timeCol{&g.RetryAfter})
	})
	if err != nil {
		return fleet.LeaseGrant{}, fmt.Errorf("acquire a lease in group %s for agent %s in %s: %w", group, req.AgentID, s.url, err)
	}
	if g.Granted {
		g.Lease, g.RetryAfter = l, time.Time{}
	}
	return g, nil
}

// expire drops the group's leases (of agent only, unless "") that expired
// at now, logging each at its expiry time.
func (s *Store) expire(ctx context.Context, tx *sql.Tx, group, agent string, now time.Time) error {
	cond, args := `group_name = ? AND expires_at <= ?`, []any{group, s.d.ts(now)}
	if agent != "" {
		cond, args = cond+` AND agent_id = ?`, append(args, agent)
	}
	rows, err := tx.QueryContext(ctx, s.d.q(`SELECT agent_id, expires_at FROM leases WHERE `+cond+` ORDER BY expires_at, agent_id`), args...)
	if err != nil {
		return err
	}
	type gone struct {
		agent string
		at    time.Time
	}
	var expired []gone
	for rows.Next() {
		var e gone
		if err := rows.Scan(&e.agent, timeCol{&e.at}); err != nil {
			rows.Close()
			return err
		}
		expired = append(expired, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(expired) == 0 {
		return nil
	}
	for _, e := range expired {
		if err := s.logLease(ctx, tx, group, e.agent, fleet.LeaseExpired, e.at); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, s.d.q(`DELETE FROM leases WHERE `+cond), args...)
	return err
}

func (s *Store) logLease(ctx context.Context, tx *sql.Tx, group, agent, event string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO lease_log (group_name, agent_id, event, at) VALUES (?, ?, ?, ?)`),
		group, agent, event, s.d.ts(at)); err != nil {
		return err
	}
	// Bounded: the oldest entries go once the log is full (an indexed
	// range on the key, nothing to delete most of the time).
	_, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM lease_log WHERE id <= (SELECT MAX(id) FROM lease_log) - ?`), maxLeaseLog)
	return err
}

// ReleaseLease drops the agent's lease and logs LeaseReleased; false when
// it held none (a lease that had expired is logged LeaseExpired instead).
func (s *Store) ReleaseLease(ctx context.Context, group, agentID string, now time.Time) (bool, error) {
	group = cmp.Or(group, report.NoGroup)
	now = micro(now)
	var released bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.lock(ctx, tx, "lease/"+group); err != nil {
			return err
		}
		if err := s.expire(ctx, tx, group, agentID, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM leases WHERE group_name = ? AND agent_id = ?`), group, agentID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		released = true
		return s.logLease(ctx, tx, group, agentID, fleet.LeaseReleased, now)
	})
	if err != nil {
		return false, fmt.Errorf("release the lease of agent %s in group %s in %s: %w", agentID, group, s.url, err)
	}
	return released, nil
}

// Leases are the group's unexpired leases ("" for every group), by group
// and acquisition time.
func (s *Store) Leases(ctx context.Context, group string, now time.Time) ([]fleet.Lease, error) {
	cond, args := `expires_at > ?`, []any{s.d.ts(now)}
	if group != "" {
		cond, args = cond+` AND group_name = ?`, append(args, group)
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT group_name, agent_id, channel, version, acquired_at, expires_at
		FROM leases WHERE `+cond+` ORDER BY group_name, acquired_at, agent_id`), args...)
	if err != nil {
		return nil, fmt.Errorf("read the leases of group %s from %s: %w", group, s.url, err)
	}
	defer rows.Close()
	out := []fleet.Lease{}
	for rows.Next() {
		var l fleet.Lease
		if err := rows.Scan(&l.Group, &l.AgentID, &l.Channel, &l.Version, timeCol{&l.AcquiredAt}, timeCol{&l.ExpiresAt}); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// LeaseLog is the group's lease events ("" for every group), in the order
// they were recorded, which is the order the group's lock serialised them
// in: replaying it counts the holders at every step. (An expiry is
// recorded when a later request finds it, with its own, earlier, time.)
func (s *Store) LeaseLog(ctx context.Context, group string) ([]fleet.LeaseEvent, error) {
	cond, args := "1 = 1", []any{}
	if group != "" {
		cond, args = "group_name = ?", append(args, group)
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT group_name, agent_id, event, at FROM lease_log WHERE `+cond+
		` ORDER BY id LIMIT ?`), append(args, maxLeaseLog)...)
	if err != nil {
		return nil, fmt.Errorf("read the lease log of group %s from %s: %w", group, s.url, err)
	}
	defer rows.Close()
	out := []fleet.LeaseEvent{}
	for rows.Next() {
		var e fleet.LeaseEvent
		if err := rows.Scan(&e.Group, &e.AgentID, &e.Event, timeCol{&e.At}); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Lead takes the named leader lease for holder until now+ttl when nobody
// holds it, its holder's lease expired, or holder already has it; one
// conditional upsert, atomic on both engines.
func (s *Store) Lead(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("lead: name %q, holder %q and TTL %s must all be set", name, holder, ttl)
	}
	var leads bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		var got string
		err := tx.QueryRowContext(ctx, s.d.q(`INSERT INTO leader (name, holder, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE leader.holder = excluded.holder OR leader.expires_at <= ? RETURNING holder`),
			name, holder, s.d.ts(now.Add(ttl)), s.d.ts(now)).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		leads = err == nil && got == holder
		return err
	})
	if err != nil {
		return false, fmt.Errorf("take the leader lease %s for %s in %s: %w", name, holder, s.url, err)
	}
	return leads, nil
}

// Resign gives the leader lease up at once, if holder has it.
func (s *Store) Resign(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM leader WHERE name = ? AND holder = ?`), name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("resign the leader lease %s of %s in %s: %w", name, holder, s.url, err)
	}
	return nil
}
