// Command fieldhub is the Fieldhub IoT hub: the server and its admin CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsagePrinted) {
			fmt.Fprintln(os.Stderr, "fieldhub:", err)
		}
		os.Exit(exitCode(err))
	}
}
