package main

import (
	"net"
	"sync"
	"time"
)

// proxy is a TCP proxy on loopback in front of a real server (Redis, the
// IdP), the fault between the app and it: it adds latency to every chunk
// of data in each direction, or holds it for longer than a client waits,
// or refuses: its port closed (connection refused) and every connection
// reset.
type proxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener // nil while refusing
	delay time.Duration
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(target string) (*proxy, error) {
	p := &proxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p, nil
}

func (p *proxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c)
			}()
		}
	}()
}

// setDelay makes every chunk of data wait d in each direction, from the
// moment the proxy read it, on new and open connections alike.
func (p *proxy) setDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

func (p *proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

// refuse closes the port, so that connecting is refused, and resets every
// open connection.
func (p *proxy) refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST
		}
		c.Close()
	}
}

// restore listens on the proxy's address again.
func (p *proxy) restore() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serve(ln)
	return nil
}

// close stops the proxy and waits for its goroutines.
func (p *proxy) close() {
	p.refuse()
	p.wg.Wait()
}

func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.ln == nil {
			return false // refusing
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxy) handle(down net.Conn) {
	if !p.track(down, true) {
		down.Close()
		return
	}
	defer p.track(down, false)
	defer down.Close()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(up, true) {
		up.Close()
		return
	}
	defer p.track(up, false)
	defer up.Close()
	done := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(done); down.Close(); up.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, down, done, end) }()
	go func() { defer wg.Done(); p.pipe(down, up, done, end) }()
	wg.Wait()
}

// chunk is data read at one moment, to be written once it is due.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk delayed by the proxy's delay from the
// moment it was read, without limiting throughput: chunks read while
// others wait are queued. It ends both connections when either side ends.
func (p *proxy) pipe(dst, src net.Conn, done chan struct{}, end func()) {
	queue := make(chan chunk, 256)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{buf[:n], time.Now().Add(p.currentDelay())}:
				case <-done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer end()
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-done:
				t.Stop()
				return
			}
		}
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}
