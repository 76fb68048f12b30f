package main

import (
	"context"
	"fmt"

	"upkeep.dev/upkeep/reconcile/hostupdater"
	"upkeep.dev/upkeep/reconcile/report"
)

// newReporter returns the function that sends each pass's report to the
// server, or nil when reports are off.
func newReporter(cfg *hostupdater.Config) (func(context.Context, *hostupdater.Pass) error, error) {
	if !*cfg.Report {
		return nil, nil
	}
	if cfg.TokenFile == "" {
		return nil, &exitCodeError{Code: 2, Err: fmt.Errorf("report: true needs tokenFile: the bearer token the server expects")}
	}
	c, err := report.NewClient(cfg.Server, report.ClientOptions{TokenFile: cfg.TokenFile, CAFile: cfg.CAFile, UserAgent: "upkeep-agent/" + buildVersion()})
	if err != nil {
		return nil, &exitCodeError{Code: 2, Err: fmt.Errorf("report: %w", err)}
	}
	return func(ctx context.Context, p *hostupdater.Pass) error {
		return c.Send(ctx, hostupdater.Report(cfg, p, buildVersion()))
	}, nil
}
