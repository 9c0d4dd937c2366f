package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func (a *app) serveCommand() *cobra.Command {
	var url, addr string
	var controls bool
	cmd := &cobra.Command{
		Use:   "serve --database-url URL [--status-addr ADDR] [--status-controls]",
		Short: "Serve the live status page of every run of a database",
		Long: `Serve a status page listing every run of the database, and a page per run:
its state, counts by status, rate, resets in flight, failures, and a table of
its instances filterable by status and error code, refreshed live; each page
has a JSON twin under /api/. The page is read-only unless --status-controls is
given: then it can pause, resume and cancel runs, with confirmed POSTs from
the page itself only. It binds to loopback unless ADDR names another host.`,
		Example: `  batchreset serve --database-url "$DATABASE_URL" --status-addr 127.0.0.1:8080`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openDB(cmd.Context(), url, true)
			if err != nil {
				return err
			}
			defer db.Close()
			page := &statusPage{db: db, controls: controls, token: newToken(), log: a.log}
			u, stop, err := serveStatus(addr, page.handler(), a.log)
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
	cmd.Flags().StringVar(&addr, "status-addr", "127.0.0.1:8080", "address to serve the page on (a bare :PORT binds to loopback)")
	cmd.Flags().BoolVar(&controls, "status-controls", false, "let the page pause, resume and cancel runs")
	return cmd
}
