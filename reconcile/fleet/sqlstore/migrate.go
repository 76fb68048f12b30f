package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the schema, in order; migrations[i] is version i+1. Never
// edit one that has shipped: append a new one. Each is a list of single
// statements, since not every driver runs several in one Exec.
var migrations = [][]string{{
	// agents: the latest report of each agent, with the columns that
	// pages, counts and the rollout engine select on beside the
	// report itself. seq numbers the agent's reports for its history.
	`CREATE TABLE agents (
			agent_id {{text}} PRIMARY KEY,
			group_name {{text}} NOT NULL,
			channel {{text}} NOT NULL,
			current_version {{text}} NOT NULL,
			target_version {{text}} NOT NULL,
			health {{text}} NOT NULL,
			action {{text}} NOT NULL,
			outcome {{text}} NOT NULL,
			failed_version {{text}} NOT NULL,
			report {{json}} NOT NULL,
			received_at {{time}} NOT NULL,
			seq BIGINT NOT NULL
		)`,
	`CREATE INDEX agents_group_id ON agents (group_name, agent_id)`,
	`CREATE INDEX agents_channel ON agents (channel)`,
	`CREATE TABLE agent_history (
			agent_id {{text}} NOT NULL,
			seq BIGINT NOT NULL,
			report {{json}} NOT NULL,
			received_at {{time}} NOT NULL,
			PRIMARY KEY (agent_id, seq)
		)`,
	`CREATE TABLE rollouts (
			channel {{text}} PRIMARY KEY,
			version {{text}} NOT NULL,
			from_version {{text}} NOT NULL,
			state {{text}} NOT NULL,
			stage INTEGER NOT NULL,
			step {{text}} NOT NULL,
			canaries {{json}} NOT NULL,
			critical BOOLEAN NOT NULL,
			revision {{text}} NOT NULL,
			started_at {{time}} NOT NULL,
			since {{time}} NOT NULL,
			bake_until {{time}},
			halted_at {{time}},
			rule {{text}} NOT NULL,
			reason {{text}} NOT NULL,
			message {{text}} NOT NULL,
			generation BIGINT NOT NULL
		)`,
	`CREATE TABLE rollout_transitions (
			id {{serial}},
			channel {{text}} NOT NULL,
			version {{text}} NOT NULL,
			from_state {{text}} NOT NULL,
			to_state {{text}} NOT NULL,
			stage INTEGER NOT NULL,
			step {{text}} NOT NULL,
			rule {{text}} NOT NULL,
			reason {{text}} NOT NULL,
			message {{text}} NOT NULL,
			actor {{text}} NOT NULL,
			at {{time}} NOT NULL
		)`,
	`CREATE INDEX rollout_transitions_channel ON rollout_transitions (channel, id)`,
	`CREATE TABLE leases (
			group_name {{text}} NOT NULL,
			agent_id {{text}} NOT NULL,
			channel {{text}} NOT NULL,
			version {{text}} NOT NULL,
			acquired_at {{time}} NOT NULL,
			expires_at {{time}} NOT NULL,
			PRIMARY KEY (group_name, agent_id)
		)`,
	`CREATE TABLE lease_log (
			id {{serial}},
			group_name {{text}} NOT NULL,
			agent_id {{text}} NOT NULL,
			event {{text}} NOT NULL,
			at {{time}} NOT NULL
		)`,
	`CREATE INDEX lease_log_group ON lease_log (group_name, id)`,
	`CREATE TABLE leader (
			name {{text}} PRIMARY KEY,
			holder {{text}} NOT NULL,
			expires_at {{time}} NOT NULL
		)`,
}, {
	// The counts of GET /v1/fleet, the fleet page and upkeep_agents group
	// every agent by these columns (and a search matches agent_id):
	// scanning this narrow index rather than the rows, which carry the
	// whole report, makes them 2 to 3 times cheaper at 10,000 agents, for
	// a little more work per report.
	`CREATE INDEX agents_counts ON agents (group_name, current_version, health, action, received_at, agent_id)`,
}}

// migrate brings the schema to the latest version in one transaction
// holding the engine's write lock, so replicas opening a fresh database at
// once apply each migration once and the losers see it applied.
func (s *Store) migrate(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := s.lock(ctx, tx, "migrate"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.d.types.Replace(
			`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at {{time}} NOT NULL)`)); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		if have > len(migrations) {
			return fmt.Errorf("the store's schema is at version %d, newer than this upkeep knows (%d): "+
				"run an upkeep at least as new as the one that last opened it", have, len(migrations))
		}
		for v := have + 1; v <= len(migrations); v++ {
			for _, stmt := range migrations[v-1] {
				if _, err := tx.ExecContext(ctx, s.d.types.Replace(stmt)); err != nil {
					return fmt.Errorf("migration %d: %w", v, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
				v, s.d.ts(time.Now())); err != nil {
				return fmt.Errorf("record migration %d: %w", v, err)
			}
		}
		return nil
	})
}

// LatestSchema is the schema version this upkeep migrates to.
var LatestSchema = len(migrations)

// SchemaVersion is the store's applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
