package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
)

// ErrNoRollout: the channel has no stored rollout.
var ErrNoRollout = errors.New("the channel has no rollout")

// Operate applies an operator's step (Halt or Resume) to the stored
// rollout of channel, re-reading and retrying when the leader wrote in
// between (a few times, then the conflict is returned). It is what POST
// /v1/rollouts/<channel>/halt|resume does; the errors wrap ErrNoRollout,
// ErrNotRunning, ErrNotHalted or fleet.ErrConflict.
func Operate(ctx context.Context, store fleet.Store, channel string,
	step func(fleet.Rollout, string, string, time.Time) (fleet.Rollout, fleet.Transition, error),
	operator, note string, now time.Time) (fleet.Rollout, fleet.Transition, error) {
	const tries = 5
	var err error
	for range tries {
		r, ok, rerr := store.Rollout(ctx, channel)
		if rerr != nil {
			return fleet.Rollout{}, fleet.Transition{}, rerr
		}
		if !ok {
			return fleet.Rollout{}, fleet.Transition{}, fmt.Errorf("channel %s: %w yet; the engine records one within a second of the channel being served", channel, ErrNoRollout)
		}
		next, t, serr := step(r, operator, note, now)
		if serr != nil {
			return r, fleet.Transition{}, serr
		}
		saved, werr := store.SaveRollout(ctx, next, t)
		if werr == nil {
			return saved, t, nil
		}
		if err = werr; !errors.Is(werr, fleet.ErrConflict) {
			return r, fleet.Transition{}, werr
		}
	}
	return fleet.Rollout{}, fleet.Transition{}, err
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
