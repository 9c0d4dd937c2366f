package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
)

func (a *app) serveCommand() *cobra.Command {
	var url string
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "serve --database-url URL [--status-addr ADDR] [--status-controls]",
		Short: "Serve the live status page of every run of a database",
		Long: `Serve a status page listing every run of the database, and a page per run:
its state and what it waits for, its progress and waves, rate, failures first,
and its instances filterable by status, wave and error code, refreshed live;
each page has a JSON twin under /api/.

The page answers only to its own address, localhost and the names given with
--status-host (so that no other web page reaches it through DNS rebinding). It
is read-only unless --status-controls is given with a user and password in
` + envStatusUser + ` and ` + envStatusPassword + ` (or --status-auth-file):
then an operator who signs in can pause, resume and cancel runs, with
confirmed POSTs from the page itself; each control is logged with who sent it.
It binds to loopback unless ADDR names another host, and warns when it does.`,
		Example: `  batchreset serve --database-url "$DATABASE_URL" --status-addr 127.0.0.1:8080`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(osEnv); err != nil {
				return err
			}
			db, err := openDB(cmd.Context(), url, true)
			if err != nil {
				return err
			}
			defer db.Close()
			p, err := page.newPage(statuspage.Config{
				List: func(ctx context.Context) ([]statuspage.Listing, error) { return runListings(ctx, db) },
				Open: func(name string) statuspage.Run { return &dbSource{db: db, run: name} },
			}, a.log)
			if err != nil {
				return usageError("status page: %v", err)
			}
			u, stop, err := p.Serve(page.addr)
			if err != nil {
				return usageError("--status-addr: %v", err)
			}
			defer stop()
			a.notef("status page: %s (Ctrl-C stops it)", u)
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			<-ctx.Done()
			return nil
		},
	}
	addDatabaseFlag(cmd.Flags(), &url)
	page.add(cmd.Flags(), "127.0.0.1:8080", "address to serve the page on (a bare :PORT binds to loopback)")
	return cmd
}
