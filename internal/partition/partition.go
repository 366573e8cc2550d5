// Package partition is a TCP proxy for tests that cuts the network between its clients and their
// server the way a partition looks from each end: on Cut, the server's side of every connection
// is closed (the server sees its peer go and ends the session), while the client's side stays
// open and silent — nothing more is read from it or written to it — so the client hears nothing
// and must notice by itself. Connections made while cut are held silent too. Heal resets the
// silent client sides, as a client's retransmission reaching a server that forgot it does, and
// lets new connections through again.
package partition

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards connections to one server until cut.
type Proxy struct {
	// Addr is where clients connect (host:port).
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	links map[*link]bool
	held  []net.Conn
}

// link is one client connection and its server connection.
type link struct {
	client, server net.Conn
}

// Start listens on loopback and forwards to target; it stops when the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, links: map[*link]bool{}}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		if cut {
			p.held = append(p.held, c)
		}
		p.mu.Unlock()
		if !cut {
			go p.forward(c)
		}
	}
}

func (p *Proxy) forward(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	l := &link{client: client, server: server}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		server.Close()
		p.hold(client)
		return
	}
	p.links[l] = true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.links[l] {
		return // cut: the client's side is held
	}
	delete(p.links, l)
	client.Close()
	server.Close()
}

// hold keeps a client's side open and silent.
func (p *Proxy) hold(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = append(p.held, c)
}

// Cut closes the server's side of every connection and leaves the clients' sides silent, until
// Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for l := range p.links {
		delete(p.links, l)
		// The copy from the client stops at once, reading nothing more; the client's side stays
		// open.
		_ = l.client.SetReadDeadline(time.Unix(1, 0))
		l.server.Close()
		p.held = append(p.held, l.client)
	}
}

// Heal resets the clients' sides held silent and lets new connections through.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for _, c := range p.held {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not an orderly close
		}
		c.Close()
	}
	p.held = nil
}

// Carries reports whether one of the proxy's connections to the server leaves from local port
// port (the client_port PostgreSQL's pg_stat_activity shows), to tell which client a server-side
// session belongs to.
func (p *Proxy) Carries(port int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		if a, ok := l.server.LocalAddr().(*net.TCPAddr); ok && a.Port == port {
			return true
		}
	}
	return false
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Heal()
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		l.client.Close()
		l.server.Close()
	}
}
