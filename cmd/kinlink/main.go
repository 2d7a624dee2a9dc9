// Command kinlink runs Kinlink; see internal/app.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // facility time zones work on hosts without a zoneinfo database

	"github.com/kinlink/kinlink/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kinlink: "+app.OneLine(err))
		if app.IsUsage(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
