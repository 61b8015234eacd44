package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gomodule/redigo/redis"
)

// reads pipelines a store's GETs on one connection borrowed from the
// pool, the pipe, while any are in flight. Its fields are guarded by mu.
type reads struct {
	mu  sync.Mutex
	cur *pipe // the pipe new reads join; nil when none is open
}

// pipe is one borrowed connection and the reads on it. A goroutine that
// finds nobody writing becomes the pipe's writer: it writes every queued
// GET with one flush, and again while more queue up. One reader goroutine
// at a time reads the replies, in the order the GETs were written. The
// last of the two to find nothing left to do returns the connection to the
// pool. Its fields are guarded by reads.mu, except conn's own methods:
// redigo allows one goroutine in Send and Flush and one in Receive at once.
type pipe struct {
	conn    redis.Conn // nil until the first writer has borrowed it
	queue   []*read    // not yet written
	sent    []*read    // written; replies not yet read, in order
	writing bool
	reading bool
	err     error // the connection broke, or could not be borrowed
	closed  bool
}

// read is one GET, and its result once done is closed.
type read struct {
	key   string
	value []byte
	found bool
	err   error
	done  chan struct{}
}

// Find returns the data for a session token, as scs's Find does:
// found is false when Redis has no such key (it expired or was deleted).
// It is FindCtx with a background context.
func (s *RedisStore) Find(token string) (b []byte, found bool, err error) {
	return s.FindCtx(context.Background(), token)
}

// FindCtx returns the data for a session token with one GET, as scs's
// Find does. It is scs's CtxStore method: scs calls it to load every
// session, and stepup's guard to read the user's revocation record, so a
// guarded request makes two.
//
// Reads that run at the same time share one connection of the pool, as a
// pipeline: a GET is written as soon as no other is being written, and
// GETs that arrive during a write go out together in the next, with one
// system call; the replies come back in order on the same connection. No
// read waits for another's round trip, only, at most, for a write. Under
// load that saves most of the system calls a GET costs, and a Redis
// connection per concurrent read (docs/performance.md in the repository
// has numbers); alone, a read costs about what it cost before. The
// connection goes back to the pool when no read is in flight. Each GET is
// still written after FindCtx was called, so a read sees every write Redis
// acknowledged before it.
//
// A read whose ctx has ended is not sent. Once sent, ctx ends the wait
// for the reply, not the GET: an abandoned read's reply is read and
// dropped. A written GET is bounded by the pool's read timeout
// (redis.DialReadTimeout), which a pool shared by web requests should set:
// the goroutine that wrote a GET when no reply was outstanding reads the
// replies itself until its own, as a plain Do would.
// A Redis error fails the read it answers; a connection error fails every
// read in flight on it, and the next read borrows another connection.
func (s *RedisStore) FindCtx(ctx context.Context, token string) (b []byte, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("redisstore: find: %w", err)
	}
	r := &read{key: s.prefix + token, done: make(chan struct{})}
	s.reads.mu.Lock()
	p := s.reads.cur
	if p == nil {
		p = &pipe{}
		s.reads.cur = p
	}
	p.queue = append(p.queue, r)
	write := !p.writing
	p.writing = true
	s.reads.mu.Unlock()
	if write && s.write(p, true) {
		// Nobody was reading: this goroutine reads, until its own reply.
		s.read(p, r)
	}
	select {
	case <-r.done:
		return r.value, r.found, r.err
	case <-ctx.Done():
		return nil, false, fmt.Errorf("redisstore: find: %w", ctx.Err())
	}
}

// maxWriterRounds is how many writes a reader's own goroutine makes for
// others before it hands the writing to a goroutine of its own and goes
// back to its request.
const maxWriterRounds = 2

// write is the pipe's writer: it writes what is queued until the queue is
// empty. A writer called by FindCtx itself (inline) does not start a
// reader for what it wrote: it reports that it took that role, and its
// caller reads, which saves a goroutine and a hand-off when reads are
// few. A writer goroutine starts a reader goroutine if none runs.
func (s *RedisStore) write(p *pipe, inline bool) (reader bool) {
	if p.conn == nil {
		// Only the pipe's first writer gets here, and no reader runs yet.
		conn, err := s.pool.Get(), error(nil)
		if err = conn.Err(); err != nil {
			conn.Close()
			conn = nil
			err = fmt.Errorf("redisstore: find: %w", err)
		}
		s.reads.mu.Lock()
		p.conn = conn
		if err != nil {
			s.breakPipe(p, err)
		}
		s.reads.mu.Unlock()
	}
	for round := 0; ; round++ {
		s.reads.mu.Lock()
		if p.err != nil || len(p.queue) == 0 {
			failed := p.queue
			p.queue = nil
			s.leave(p, &p.writing, failed, p.err)
			return reader
		}
		if round == maxWriterRounds {
			s.reads.mu.Unlock()
			go s.write(p, false)
			return reader
		}
		batch := p.queue
		p.queue = nil
		p.sent = append(p.sent, batch...)
		if !p.reading {
			p.reading = true
			if inline {
				reader = true
			} else {
				go s.read(p, nil)
			}
		}
		s.reads.mu.Unlock()
		var err error
		for _, r := range batch {
			if err = p.conn.Send("GET", r.key); err != nil {
				break
			}
		}
		if err == nil {
			err = p.conn.Flush()
		}
		if err != nil {
			// redigo has closed the connection: the reader's Receive
			// fails and fails what was sent. Nothing more is written.
			s.reads.mu.Lock()
			s.breakPipe(p, err)
			s.reads.mu.Unlock()
		}
	}
}

// read is the pipe's reader: it reads a reply for each written GET until
// none is outstanding. Called by FindCtx for its own read mine, it reads
// until mine is answered, then hands what is left to a reader goroutine.
func (s *RedisStore) read(p *pipe, mine *read) {
	for {
		s.reads.mu.Lock()
		if len(p.sent) == 0 {
			s.leave(p, &p.reading, nil, nil)
			return
		}
		if mine != nil && isDone(mine) {
			s.reads.mu.Unlock()
			go s.read(p, nil)
			return
		}
		r := p.sent[0]
		p.sent[0] = nil
		p.sent = p.sent[1:]
		s.reads.mu.Unlock()
		r.reply(p.conn.Receive())
		close(r.done)
		if err := p.conn.Err(); err != nil {
			// The connection broke: no further reply will come.
			s.reads.mu.Lock()
			s.breakPipe(p, err)
			failed := p.sent
			p.sent = nil
			s.leave(p, &p.reading, failed, err)
			return
		}
	}
}

func isDone(r *read) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// breakPipe records that p can take no more reads; new reads open another
// pipe. The caller holds reads.mu.
func (s *RedisStore) breakPipe(p *pipe, err error) {
	if p.err == nil {
		p.err = err
	}
	if s.reads.cur == p {
		s.reads.cur = nil
	}
}

// leave ends the writer's or the reader's turn on p (role is p.writing or
// p.reading): it fails the reads it was left with, and hands the
// connection back to the pool when p is idle. The caller holds reads.mu;
// leave releases it.
func (s *RedisStore) leave(p *pipe, role *bool, failed []*read, err error) {
	*role = false
	s.closeIfIdle(p)
	s.reads.mu.Unlock()
	finish(failed, err)
}

// closeIfIdle hands p's connection back to the pool (which closes a broken
// one) when neither a writer nor a reader runs and nothing is queued or
// outstanding. It does so before it lets go of reads.mu, so that the next
// read's pipe finds the connection idle in the pool rather than dialling
// another: with nothing outstanding, Close writes nothing and reads
// nothing. The caller holds reads.mu.
func (s *RedisStore) closeIfIdle(p *pipe) {
	if p.writing || p.reading || len(p.queue) > 0 || len(p.sent) > 0 || p.closed {
		return
	}
	p.closed = true
	if s.reads.cur == p {
		s.reads.cur = nil
	}
	if p.conn != nil {
		p.conn.Close()
	}
}

// finish fails reads with err and wakes their callers.
func finish(reads []*read, err error) {
	for _, r := range reads {
		r.value, r.found, r.err = nil, false, err
		close(r.done)
	}
}

// reply records a GET's reply.
func (r *read) reply(v any, err error) {
	r.value, err = redis.Bytes(v, err)
	switch {
	case errors.Is(err, redis.ErrNil):
		r.value, r.found, r.err = nil, false, nil
	case err != nil:
		r.value, r.found, r.err = nil, false, err
	default:
		r.found = true
	}
}
