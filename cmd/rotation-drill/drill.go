package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/go-sql-driver/mysql"
)

// drill sets up the target the options name, runs the workers through the
// rotations and returns the report. Progress goes to progress.
func drill(ctx context.Context, o *options, progress io.Writer) (*Report, error) {
	if o.virtual {
		return runVirtual(ctx, o, progress)
	}
	t, err := openTarget(ctx, o)
	if err != nil {
		return nil, err
	}
	run := runDrill
	if o.processes > 0 {
		run = runFleet
	}
	rep, err := run(ctx, o, t, progress)
	if cerr := t.close(); cerr != nil && err == nil {
		fmt.Fprintf(progress, "rotation-drill: cleanup: %v\n", cerr)
	}
	return rep, err
}

// openTarget sets up what the options name.
func openTarget(ctx context.Context, o *options) (*target, error) {
	switch {
	case o.aws:
		return awsTarget(ctx, o)
	case o.mysqlRoot != "":
		return mysqlRootTarget(ctx, o)
	}
	return embeddedTarget(ctx, o)
}

// runDrill runs the workers on t: a quarter of the duration before the
// first rotation, the rotations back to back, then the rest of the duration
// (a quarter of it at least) after the last.
func runDrill(ctx context.Context, o *options, t *target, progress io.Writer) (*Report, error) {
	conn, err := t.connector()
	if err != nil {
		return nil, fmt.Errorf("rotatingmysql connector: %w", err)
	}
	plainConn, err := mysql.NewConnector(t.plain)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	rec := newRecorder(driverRotating)
	plainRec := newRecorder(driverPlain)
	snapshot := func() counters {
		return counters{AuthRefused: conn.Stats().AuthRefused, APICalls: t.apiCalls(conn)}
	}
	tl := newTimeline(snapshot)

	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var wg sync.WaitGroup
	groups := []*workerGroup{newWorkerGroup(rec, conn, o.workers, o.interval)}
	if o.plainWorkers > 0 {
		groups = append(groups, newWorkerGroup(plainRec, plainConn, o.plainWorkers, o.interval))
	}
	for _, g := range groups {
		g.run(work, &wg, tl)
	}
	var pr *progressPrinter
	if !o.quiet {
		pr = startProgress(progress, o, t, tl, conn, rec, plainRec)
	}

	quarter := o.duration / 4
	var rotErr error
	if err := sleep(ctx, quarter); err == nil {
		for i := 1; i <= o.rotations && rotErr == nil; i++ {
			rotErr = t.rotation.rotate(ctx, func(step string) { tl.mark(step, i) })
			if rotErr != nil {
				rotErr = fmt.Errorf("rotation %d: %w", i, rotErr)
			}
		}
		tl.mark(stepAfter, o.rotations)
		end := max(o.duration-tl.since(), quarter)
		sleep(ctx, end)
	}
	interrupted := ctx.Err() != nil
	tl.shutdown()
	stopWork()
	wg.Wait()
	pr.stop()
	final := snapshot()
	elapsed := tl.since()
	stats := conn.Stats()
	var errs []error
	for _, g := range groups {
		errs = append(errs, g.Close())
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(progress, "rotation-drill: close pools: %v\n", err)
	}
	rep := buildReport(o, t, tl, final, elapsed, stats, rec, plainRec)
	if t.regions != nil {
		rep.addRegions(t.regions())
	}
	rep.failRun(interrupted, rotErr)
	return rep, nil
}
