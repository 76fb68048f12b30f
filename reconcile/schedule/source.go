package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"upkeep.dev/upkeep/reconcile/calendar"
)

// Source is where an agent's updater gets the agent's schedule. Load never
// fails: a schedule that cannot be found or trusted comes back with a state
// other than Usable, and the updater treats the agent as unhealthy.
type Source interface {
	// Load gets and judges the schedule. save keeps a good answer for
	// later passes; a dry run passes false, since it must change nothing.
	Load(ctx context.Context, now time.Time, save bool) Schedule
	String() string
}

// FetchFunc fetches a group's windows from an upkeep server
// (versionclient.Client.Schedule has this shape).
type FetchFunc func(ctx context.Context, group string) ([]calendar.Interval, error)

// ServerSource fetches the group's schedule from the upkeep server and
// saves every good answer at Path, so that a restart of the updater or a
// server that is down keeps the last schedule it got.
type ServerSource struct {
	Fetch FetchFunc
	Group string
	// Path is the saved copy in the updater's state directory, e.g.
	// /var/lib/upkeep/schedule.json (format by extension, see WriteFile).
	Path   string
	Logger *slog.Logger // nil: slog.Default()
}

// Load fetches the schedule; on success it saves it (when save) and judges
// it, on failure it judges the saved copy and records the fetch error in Err.
func (s *ServerSource) Load(ctx context.Context, now time.Time, save bool) Schedule {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	ws, err := s.Fetch(ctx, s.Group)
	if err == nil {
		sch := Evaluate(ws, now)
		sch.Message = fmt.Sprintf("group %q from the server: %s", s.Group, sch.Message)
		if !save {
			return sch
		}
		if werr := WriteFile(s.Path, ws); werr != nil {
			// The fresh schedule is still right for now; only a restart
			// without the server would miss it.
			log.Warn("cannot save the fetched schedule", "group", s.Group, "path", s.Path, "err", werr)
		} else {
			sch.Path = s.Path
		}
		return sch
	}
	saved := ReadFile(s.Path, now)
	fetchErr := fmt.Errorf("fetching the schedule of group %q: %w", s.Group, err)
	if saved.State == Unreadable {
		saved.Err = fmt.Errorf("%w; and the saved copy: %w", fetchErr, saved.Err)
	} else {
		saved.Err = fetchErr
	}
	saved.Message = fmt.Sprintf("%v; using the saved copy: %s", fetchErr, saved.Message)
	log.Warn("cannot fetch the schedule, using the saved copy", "group", s.Group, "path", s.Path,
		"err", err, "saved", saved.State.String())
	return saved
}

func (s *ServerSource) String() string {
	return fmt.Sprintf("server schedule of group %q (saved at %s)", s.Group, s.Path)
}

// FileSource reads the schedule the agent itself writes in Teleport's
// format, at Path (default TeleportSchedulePath).
type FileSource struct {
	Path string
}

// Load reads and judges the file.
func (s FileSource) Load(_ context.Context, now time.Time, _ bool) Schedule {
	return ReadFile(s.path(), now)
}

func (s FileSource) path() string {
	if s.Path == "" {
		return TeleportSchedulePath
	}
	return s.Path
}

func (s FileSource) String() string { return "agent schedule file " + s.path() }

// NoSource is the choice of having no schedule: every Load is Missing, so
// updates are never held back for a window.
type NoSource struct{}

// Load returns a Missing schedule.
func (NoSource) Load(context.Context, time.Time, bool) Schedule {
	return Schedule{State: Missing, Message: "no schedule source is configured"}
}

func (NoSource) String() string { return "no schedule" }
