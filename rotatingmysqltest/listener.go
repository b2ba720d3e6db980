package rotatingmysqltest

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// switchable serves HTTP on a fixed address and can be taken down (new
// connections refused, open ones closed, idle keep-alive ones included) and
// brought up again on the same address, so that a test can make a fake
// service unreachable in the middle of a run. The SecretsManager emulator
// and the Agent share it.
type switchable struct {
	srv  *http.Server
	addr string
	name string // for errors: "SecretsManager", "Agent"

	mu     sync.Mutex
	ln     net.Listener // nil while down or closed
	closed bool
	conns  map[net.Conn]struct{}
}

// listen starts serving h on addr ("127.0.0.1:0" picks a free port).
func listen(name, addr string, h http.Handler) (*switchable, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &switchable{addr: ln.Addr().String(), name: name, conns: make(map[net.Conn]struct{})}
	s.srv = &http.Server{Handler: h, ConnState: s.trackConn, ReadHeaderTimeout: 10 * time.Second}
	s.serve(ln)
	return s, nil
}

func (s *switchable) serve(ln net.Listener) {
	s.ln = ln
	go s.srv.Serve(ln)
}

func (s *switchable) trackConn(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		if s.ln == nil {
			c.Close() // accepted just before the listener went down
			return
		}
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// setDown takes the server down (true) or brings it up again on the same
// address (false). It reports whether the state changed.
func (s *switchable) setDown(down bool) (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, errors.New("rotatingmysqltest: " + s.name + " is closed")
	}
	if down == (s.ln == nil) {
		return false, nil
	}
	if !down {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return false, err
		}
		s.serve(ln)
		return true, nil
	}
	err = s.ln.Close()
	s.ln = nil
	for c := range s.conns {
		c.Close()
	}
	clear(s.conns)
	return true, err
}

// close stops the server for good.
func (s *switchable) close() error {
	s.mu.Lock()
	s.closed, s.ln = true, nil
	s.mu.Unlock()
	return s.srv.Close()
}

// open returns how many connections the server holds open.
func (s *switchable) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// up reports whether the server is accepting connections.
func (s *switchable) up() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln != nil
}
