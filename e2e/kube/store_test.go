package kube

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	fleetstore "upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
)

// reportStore is the version server's fleet store (a real SQLite file),
// with the two reads these tests make of it.
type reportStore struct{ fleetstore.Store }

func openReportStore(t *testing.T) reportStore {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "fleet.db"), fleetstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return reportStore{st}
}

// Get is an agent's latest report; false when unknown or unreadable.
func (s reportStore) Get(id string) (report.Agent, bool) {
	a, ok, err := s.Agent(context.Background(), id, time.Now())
	return a, ok && err == nil
}

// Len is how many agents reported.
func (s reportStore) Len() int {
	p, err := s.Fleet(context.Background(), fleetstore.Page{Limit: 1}, time.Now())
	if err != nil {
		return 0
	}
	return p.Counts.Agents
}
