package rotatingmysqltest

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// LoginProxy is a TCP proxy in front of a MySQL or MariaDB server that sees
// every login pass through it: for each connection it records the user, and
// whether the server accepted or refused the login (and with which error
// number), so that a test can count the logins each account made without
// reading the server's global counters. It can also misbehave the way real
// endpoints do at login:
//
//   - HangNext: accept a TCP connection and never send the greeting (a
//     half-dead endpoint or a black-holed route);
//   - SetGreetingDelay: greet late (an Aurora Serverless instance resuming
//     from auto-pause greets after about 15 s);
//   - DelayLogins: hold a given user's login response before it reaches the
//     server (a slow path at the moment a password is tried).
//
// Logins over TLS are relayed but cannot be read: they are recorded with
// TLS set and no user. Its methods are safe for concurrent use.
type LoginProxy struct {
	ln     net.Listener
	target string

	mu         sync.Mutex
	closed     bool
	conns      map[net.Conn]struct{}
	hangNext   int
	hung       map[net.Conn]struct{}
	greetDelay time.Duration
	loginDelay map[string]*loginDelay
	logins     []*ProxyLogin
	accepted   int

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

type loginDelay struct {
	n int
	d time.Duration
}

// LoginResult is how a login through the proxy ended.
type LoginResult int

// Results of a login.
const (
	// LoginPending: the login is under way.
	LoginPending LoginResult = iota
	// LoginAccepted: the server answered OK.
	LoginAccepted
	// LoginRefused: the server answered with an error (Code).
	LoginRefused
	// LoginAbandoned: the client left before its login response reached
	// the server (during a DelayLogins hold): the server saw no login.
	LoginAbandoned
	// LoginUnread: the login went over TLS; the proxy cannot read it.
	LoginUnread
	// LoginCut: the connection ended after the server had the login
	// response but before it answered.
	LoginCut
)

var resultNames = [...]string{"pending", "accepted", "refused", "abandoned", "unread (TLS)", "cut"}

func (r LoginResult) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "LoginResult(" + strconv.Itoa(int(r)) + ")"
}

// ProxyLogin is one login the proxy relayed.
type ProxyLogin struct {
	User   string // "" for a TLS login
	TLS    bool
	Start  time.Time // when the client's login response arrived
	End    time.Time // when the server answered (zero while pending)
	Result LoginResult
	Code   uint16 // the server's error number when Result is LoginRefused
}

// LoginTally counts the logins of one user through the proxy.
type LoginTally struct {
	// Sent is the logins whose response reached the server: the logins
	// the server counts (Accepted + Refused + Cut + those pending).
	Sent      int
	Accepted  int
	Refused   int
	Abandoned int
	Cut       int
	// Codes counts the refusals by the server's error number.
	Codes map[uint16]int
}

// NewLoginProxy listens on a free port of 127.0.0.1 and relays every
// connection to target (host:port of a MySQL or MariaDB server). Call Close
// to stop it.
func NewLoginProxy(target string) (*LoginProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &LoginProxy{
		ln: ln, target: target,
		conns:      make(map[net.Conn]struct{}),
		hung:       make(map[net.Conn]struct{}),
		loginDelay: make(map[string]*loginDelay),
		done:       make(chan struct{}),
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr returns the proxy's address, host:port.
func (p *LoginProxy) Addr() string { return p.ln.Addr().String() }

// Host returns the proxy's host, 127.0.0.1.
func (p *LoginProxy) Host() string { return p.ln.Addr().(*net.TCPAddr).IP.String() }

// Port returns the proxy's port.
func (p *LoginProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// HangNext makes the next n connections hang: the proxy accepts them and
// never greets, until the client closes, ReleaseHung or Close.
func (p *LoginProxy) HangNext(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hangNext = n
}

// Hung returns the number of connections hanging now.
func (p *LoginProxy) Hung() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.hung)
}

// ReleaseHung closes the connections hanging now.
func (p *LoginProxy) ReleaseHung() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.hung {
		c.Close()
	}
}

// SetGreetingDelay makes every new connection wait d before the proxy
// connects to the server, so that the greeting comes d late; 0 ends it. A
// client that leaves during the wait never reaches the server.
func (p *LoginProxy) SetGreetingDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.greetDelay = d
}

// DelayLogins holds the next n logins of user for d before their response
// reaches the server. A client that leaves during the hold never reaches
// it: the server sees no login (LoginAbandoned).
func (p *LoginProxy) DelayLogins(user string, n int, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loginDelay[user] = &loginDelay{n: n, d: d}
}

// Connections returns the number of TCP connections the proxy accepted.
func (p *LoginProxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Logins returns a copy of every login the proxy relayed, in the order
// their responses arrived.
func (p *LoginProxy) Logins() []ProxyLogin {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProxyLogin, len(p.logins))
	for i, l := range p.logins {
		out[i] = *l
	}
	return out
}

// Tally counts the logins of user whose response arrived at or after from
// (the zero time counts them all).
func (p *LoginProxy) Tally(user string, from time.Time) LoginTally {
	t := LoginTally{Codes: make(map[uint16]int)}
	for _, l := range p.Logins() {
		if l.User != user || l.Start.Before(from) {
			continue
		}
		switch l.Result {
		case LoginAccepted:
			t.Accepted++
		case LoginRefused:
			t.Refused++
			t.Codes[l.Code]++
		case LoginAbandoned:
			t.Abandoned++
		case LoginCut:
			t.Cut++
		}
		if l.Result != LoginAbandoned {
			t.Sent++
		}
	}
	return t
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines to end.
func (p *LoginProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *LoginProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.relay(c)
		}()
	}
}

// track registers c; false once the proxy is closed.
func (p *LoginProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	p.accepted++
	return true
}

func (p *LoginProxy) untrack(c net.Conn) {
	c.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	delete(p.hung, c)
}

// startConn decides what the proxy does with a new connection.
func (p *LoginProxy) startConn(c net.Conn) (hang bool, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hangNext > 0 {
		p.hangNext--
		p.hung[c] = struct{}{}
		return true, 0
	}
	return false, p.greetDelay
}

// holdFor returns how long to hold user's login response.
func (p *LoginProxy) holdFor(user string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	ld := p.loginDelay[user]
	if ld == nil || ld.n <= 0 {
		return 0
	}
	ld.n--
	return ld.d
}

func (p *LoginProxy) record(l *ProxyLogin) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logins = append(p.logins, l)
}

func (p *LoginProxy) finish(l *ProxyLogin, r LoginResult, code uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l.Result, l.Code, l.End = r, code, time.Now()
}

// wait waits d (for ever when d < 0) while watching the client: it returns
// false when the client closed the connection or the proxy closed. The
// client sends nothing while it waits for the server, so a read that ends
// other than by the proxy's own deadline means it left.
func (p *LoginProxy) wait(c net.Conn, d time.Duration) bool {
	readErr := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		readErr <- err
	}()
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-readErr:
		return false
	case <-p.done:
		c.Close()
		<-readErr
		return false
	case <-timer:
	}
	// Unblock the reader and let the relay use the connection again.
	c.SetReadDeadline(time.Unix(1, 0))
	err := <-readErr
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// relay serves one client connection.
func (p *LoginProxy) relay(client net.Conn) {
	hang, delay := p.startConn(client)
	if hang {
		p.wait(client, -1)
		return
	}
	if delay > 0 && !p.wait(client, delay) {
		return
	}
	var d net.Dialer
	server, err := d.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.conns[server] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, server)
		p.mu.Unlock()
	}()

	if !p.login(client, server) {
		return
	}
	// The command phase: bytes both ways until either side closes.
	go func() {
		io.Copy(server, client)
		server.Close()
	}()
	io.Copy(client, server)
	client.Close()
}

// login relays the handshake and records it; false when the connection
// ended before the command phase.
func (p *LoginProxy) login(client, server net.Conn) bool {
	greet, seq, err := readPacket(server)
	if err != nil || writePacket(client, seq, greet) != nil || greet[0] == 0xff {
		return false
	}
	resp, seq, err := readPacket(client)
	if err != nil {
		return false
	}
	l := &ProxyLogin{Start: time.Now()}
	if len(resp) >= 32 && binary.LittleEndian.Uint32(resp)&capSSL != 0 {
		// An SSLRequest: the rest is encrypted.
		l.TLS, l.Result = true, LoginUnread
		p.record(l)
		return writePacket(server, seq, resp) == nil
	}
	if len(resp) >= 32 {
		if hr, err := parseHandshakeResponse(resp); err == nil {
			l.User = hr.user
		}
	}
	p.record(l)
	if hold := p.holdFor(l.User); hold > 0 && !p.wait(client, hold) {
		p.finish(l, LoginAbandoned, 0)
		return false
	}
	if writePacket(server, seq, resp) != nil {
		p.finish(l, LoginCut, 0)
		return false
	}
	for {
		pkt, seq, err := readPacket(server)
		if err != nil {
			p.finish(l, LoginCut, 0)
			return false
		}
		// Recorded before the client learns the answer, so that a test
		// reading the tally after its login returned sees it.
		switch {
		case pkt[0] == 0x00:
			p.finish(l, LoginAccepted, 0)
			return writePacket(client, seq, pkt) == nil
		case pkt[0] == 0xff:
			var code uint16
			if len(pkt) >= 3 {
				code = binary.LittleEndian.Uint16(pkt[1:3])
			}
			p.finish(l, LoginRefused, code)
			writePacket(client, seq, pkt)
			return false
		}
		if err := writePacket(client, seq, pkt); err != nil {
			p.finish(l, LoginCut, 0)
			return false
		}
		if pkt[0] == 0x01 && len(pkt) == 2 && pkt[1] == 0x03 {
			// caching_sha2_password fast auth succeeded: OK follows.
			continue
		}
		// An auth switch (0xfe) or more data (0x01): the client answers.
		more, seq, err := readPacket(client)
		if err != nil || writePacket(server, seq, more) != nil {
			p.finish(l, LoginCut, 0)
			return false
		}
	}
}
