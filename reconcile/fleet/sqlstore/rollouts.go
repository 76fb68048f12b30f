package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
)

const rolloutCols = `channel, version, from_version, state, stage, step, canaries, critical, revision,
	started_at, since, bake_until, halted_at, rule, reason, message, generation`

type scanner interface{ Scan(...any) error }

func scanRollout(sc scanner) (fleet.Rollout, error) {
	var r fleet.Rollout
	var canaries []byte
	err := sc.Scan(&r.Channel, &r.Version, &r.FromVersion, &r.State, &r.Stage, &r.Step, &canaries, &r.Critical, &r.Revision,
		timeCol{&r.StartedAt}, timeCol{&r.Since}, timeCol{&r.BakeUntil}, timeCol{&r.HaltedAt},
		&r.Rule, &r.Reason, &r.Message, &r.Generation)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(canaries, &r.Canaries); err != nil {
		return r, fmt.Errorf("decode the canaries of channel %s: %w", r.Channel, err)
	}
	return r, nil
}

// Rollouts are the current rollouts of every channel, by channel.
func (s *Store) Rollouts(ctx context.Context) ([]fleet.Rollout, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+rolloutCols+` FROM rollouts ORDER BY channel`)
	if err != nil {
		return nil, fmt.Errorf("read rollouts from %s: %w", s.url, err)
	}
	defer rows.Close()
	out := []fleet.Rollout{}
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Rollout is one channel's current rollout.
func (s *Store) Rollout(ctx context.Context, channel string) (fleet.Rollout, bool, error) {
	r, err := scanRollout(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+rolloutCols+` FROM rollouts WHERE channel = ?`), channel))
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.Rollout{}, false, nil
	}
	if err != nil {
		return fleet.Rollout{}, false, fmt.Errorf("read the rollout of channel %s from %s: %w", channel, s.url, err)
	}
	return r, true, nil
}

// SaveRollout writes r when the stored generation is r.Generation (0: no
// row yet) and appends t, in one transaction. The times are kept to the
// microsecond, and the returned rollout is what a read gives back.
func (s *Store) SaveRollout(ctx context.Context, r fleet.Rollout, t fleet.Transition) (fleet.Rollout, error) {
	if r.Channel == "" {
		return r, errors.New("save rollout: no channel")
	}
	if t.Channel == "" {
		t.Channel = r.Channel
	}
	if t.Version == "" {
		t.Version = r.Version
	}
	if t.Channel != r.Channel {
		return r, fmt.Errorf("save rollout of channel %s: the transition is of channel %s", r.Channel, t.Channel)
	}
	if t.At.IsZero() {
		t.At = r.Since
	}
	if r.Canaries == nil {
		r.Canaries = []string{}
	}
	canaries, err := json.Marshal(r.Canaries)
	if err != nil {
		return r, err
	}
	was := r.Generation
	r.Generation++
	r.StartedAt, r.Since, r.BakeUntil, r.HaltedAt = micro0(r.StartedAt), micro0(r.Since), micro0(r.BakeUntil), micro0(r.HaltedAt)
	t.At = micro(t.At)

	vals := []any{r.Version, r.FromVersion, r.State, r.Stage, r.Step, string(canaries), r.Critical, r.Revision,
		s.d.ts(r.StartedAt), s.d.ts(r.Since), s.d.tsNull(r.BakeUntil), s.d.tsNull(r.HaltedAt),
		r.Rule, r.Reason, r.Message, r.Generation}
	conflict := fmt.Errorf("save the rollout of channel %s at generation %d: %w; read it again and decide anew",
		r.Channel, was, fleet.ErrConflict)
	err = s.write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if was == 0 {
			res, err = tx.ExecContext(ctx, s.d.q(`INSERT INTO rollouts (`+rolloutCols+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel) DO NOTHING`),
				append([]any{r.Channel}, vals...)...)
		} else {
			res, err = tx.ExecContext(ctx, s.d.q(`UPDATE rollouts SET version = ?, from_version = ?, state = ?, stage = ?,
				step = ?, canaries = ?, critical = ?, revision = ?, started_at = ?, since = ?, bake_until = ?, halted_at = ?,
				rule = ?, reason = ?, message = ?, generation = ? WHERE channel = ? AND generation = ?`),
				append(vals, r.Channel, was)...)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return conflict
		}
		_, err = tx.ExecContext(ctx, s.d.q(`INSERT INTO rollout_transitions (channel, version, from_state, to_state,
			stage, step, rule, reason, message, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			t.Channel, t.Version, t.From, t.To, t.Stage, t.Step, t.Rule, t.Reason, t.Message, t.Actor, s.d.ts(t.At))
		return err
	})
	if errors.Is(err, fleet.ErrConflict) {
		return fleet.Rollout{}, err
	}
	if err != nil {
		return fleet.Rollout{}, fmt.Errorf("save the rollout of channel %s in %s: %w", r.Channel, s.url, err)
	}
	return r, nil
}

// micro0 is micro, keeping the zero time zero.
func micro0(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return micro(t)
}

// Transitions are the channel's transitions ("" for every channel), newest
// first, at most limit (0: maxList).
func (s *Store) Transitions(ctx context.Context, channel string, limit int) ([]fleet.Transition, error) {
	if limit <= 0 || limit > maxList {
		limit = maxList
	}
	cond, args := "1 = 1", []any{}
	if channel != "" {
		cond, args = "channel = ?", append(args, channel)
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT channel, version, from_state, to_state, stage, step, rule, reason,
		message, actor, at FROM rollout_transitions WHERE `+cond+` ORDER BY id DESC LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read the transitions of channel %s from %s: %w", channel, s.url, err)
	}
	defer rows.Close()
	out := []fleet.Transition{}
	for rows.Next() {
		var t fleet.Transition
		if err := rows.Scan(&t.Channel, &t.Version, &t.From, &t.To, &t.Stage, &t.Step, &t.Rule, &t.Reason,
			&t.Message, &t.Actor, timeCol{&t.At}); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
