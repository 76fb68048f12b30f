package main

import (
	"context"
	"fmt"

	"upkeep.dev/upkeep/reconcile/hostupdater"
	"upkeep.dev/upkeep/reconcile/report"
)

// newServerClient returns the client of the server's authenticated routes
// (reports and leases, both behind the report token), or nil when the
// configuration uses neither.
func newServerClient(cfg *hostupdater.Config) (*report.Client, error) {
	if !*cfg.Report && !*cfg.Leases {
		return nil, nil
	}
	if cfg.TokenFile == "" {
		return nil, &exitCodeError{Code: 2, Err: fmt.Errorf("report: true needs tokenFile: the bearer token the server expects")}
	}
	c, err := report.NewClient(cfg.Server, report.ClientOptions{TokenFile: cfg.TokenFile, CAFile: cfg.CAFile, UserAgent: "upkeep-agent/" + buildVersion()})
	if err != nil {
		return nil, &exitCodeError{Code: 2, Err: fmt.Errorf("report: %w", err)}
	}
	return c, nil
}

// newReporter returns the function that sends each pass's report to the
// server, or nil when reports are off.
func newReporter(cfg *hostupdater.Config, c *report.Client) func(context.Context, *hostupdater.Pass) error {
	if !*cfg.Report || c == nil {
		return nil
	}
	return func(ctx context.Context, p *hostupdater.Pass) error {
		return c.Send(ctx, hostupdater.Report(cfg, p, buildVersion()))
	}
}
