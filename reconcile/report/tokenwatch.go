package report

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// TokenReloadInterval is how often a server re-reads its token file: a
// Kubernetes Secret mounted as a file changes in place, with no signal.
const TokenReloadInterval = 30 * time.Second

// Watch reloads t every interval and whenever now receives (the server's
// SIGHUP), until ctx ends. A change is logged with the number of tokens,
// never a token; a file that fails to load is logged once per distinct
// error, and the tokens loaded before stay in use.
func (t *Tokens) Watch(ctx context.Context, interval time.Duration, now <-chan os.Signal, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastErr := ""
	for {
		asked := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-now:
			asked = true
		}
		changed, err := t.Reload()
		switch {
		case err != nil:
			if msg := err.Error(); asked || msg != lastErr {
				log.Warn("could not reload the report tokens; the tokens loaded before stay in use", "file", t.path, "tokens", t.Len(), "error", err)
				lastErr = msg
			}
		case changed:
			lastErr = ""
			log.Info("report tokens reloaded", "file", t.path, "tokens", t.Len())
		default:
			if lastErr != "" {
				log.Info("the report token file reads again; its tokens are unchanged", "file", t.path, "tokens", t.Len())
			} else if asked {
				log.Info("report tokens unchanged", "file", t.path, "tokens", t.Len())
			}
			lastErr = ""
		}
	}
}
