// Command rotation-drill shows what rotatingmysql is for: it rotates a
// MySQL password the way AWS Secrets Manager's managed MySQLSingleUser
// rotation does, under load, with one group of workers on rotatingmysql and
// one on the plain go-sql-driver/mysql driver with the password read once at
// start. By default everything runs in the process: a MySQL-compatible
// server (go-mysql-server) and a Secrets Manager emulator. -mysql-root
// drills against a real server; -secret ARN -aws rotates a real staging
// secret with its real rotation function.
//
// Exit status: 0 when the rotatingmysql workers saw no error, 1 when they
// did or the rotation failed, 2 when the drill could not run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/go-sql-driver/mysql"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitPass      = 0
	exitFail      = 1
	exitCannotRun = 2
)

// run runs the drill the arguments describe, printing progress to stderr
// and the report to stdout, and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitPass
	case err != nil:
		return exitCannotRun // already printed
	}
	// go-sql-driver/mysql logs broken connections itself; the report
	// counts them instead.
	mysql.SetLogger(log.New(io.Discard, "", 0))

	var printMetrics func(io.Writer) error
	if o.otel {
		if printMetrics, err = setupOTel(o); err != nil {
			fmt.Fprintf(stderr, "rotation-drill: %v\n", err)
			return exitCannotRun
		}
	}
	rep, err := drill(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rotation-drill: %v\n", err)
		return exitCannotRun
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "rotation-drill: %v\n", err)
			return exitCannotRun
		}
	} else {
		rep.writeText(stdout)
	}
	if printMetrics != nil {
		w := stdout
		if o.json {
			w = stderr
		}
		if err := printMetrics(w); err != nil {
			fmt.Fprintf(stderr, "rotation-drill: -otel: %v\n", err)
			return exitCannotRun
		}
	}
	if o.svg != "" {
		if err := writeSVG(o.svg, rep); err != nil {
			fmt.Fprintf(stderr, "rotation-drill: write %s: %v\n", o.svg, err)
			return exitCannotRun
		}
		where := o.svg
		if abs, err := filepath.Abs(o.svg); err == nil {
			where = abs
		}
		fmt.Fprintf(stderr, "rotation-drill: picture of the drill written to %s (open it in a browser; -svg '' for none)\n", where)
	}
	if !rep.Pass {
		return exitFail
	}
	return exitPass
}
