package testdb

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is a running mariadbd.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // result of cmd.Wait, valid once done is closed
}

// startProcess starts path with args, its stdout and stderr going to out.
func startProcess(path string, args []string, out *os.File) (*process, error) {
	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// On Linux the child is killed when the thread that started it
		// exits (Pdeathsig), so this goroutine keeps its thread until the
		// child is gone. A test binary that dies (a -timeout panic, ^C)
		// then takes its server with it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(path, args...)
		cmd.Stdout = out
		cmd.Stderr = out
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.cmd = cmd
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns an error if the process had to be killed or exited
// with a failure status.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return p.exitErr()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testdb: signal mariadbd: %w", err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-timer.C:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("testdb: mariadbd (pid %d) did not stop within %v of SIGTERM; killed", p.cmd.Process.Pid, grace)
}

func (p *process) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("testdb: mariadbd (pid %d): %w", p.cmd.Process.Pid, p.err)
	}
	return nil
}
