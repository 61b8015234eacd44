package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gomodule/redigo/redis"
)

// DefaultReadPipelines is RedisStore.ReadPipelines when it is zero.
const DefaultReadPipelines = 8

// reads is the state of a store's reads: how many connections are
// reading, and the reads that wait for one.
type reads struct {
	mu    sync.Mutex
	busy  int     // connections reading now
	queue []*read // waiting until one is free
}

// read is one GET, and its result once done is closed.
type read struct {
	key   string
	value []byte
	found bool
	err   error
	done  chan struct{} // nil for a read its caller sends itself
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
// Reads are pipelined when many run at once. While fewer than
// ReadPipelines reads are in flight, each is sent alone on a connection
// of the pool, as scs's Find sends it. Beyond that, reads wait, and when a
// connection comes free its next pipeline takes every read that waits: it
// writes their GETs with one write and reads their replies in order, a
// round trip for them all. Under load that saves most of the system calls
// and the Redis round trips a GET costs (docs/performance.md in the
// repository has numbers); alone, a read costs what it cost before. Each
// GET is still sent after FindCtx was called, so a read sees every write
// Redis acknowledged before it.
//
// ctx bounds the wait for a connection and for a pipeline; a read already
// sent is bounded by the pool's read timeout (redis.DialReadTimeout),
// which a pool shared by web requests should set. A Redis error fails the
// read it answers; a connection error fails every read of its pipeline,
// and the next pipeline takes another connection from the pool.
func (s *RedisStore) FindCtx(ctx context.Context, token string) (b []byte, found bool, err error) {
	r := &read{key: s.prefix + token}
	s.reads.mu.Lock()
	if s.reads.busy < s.readPipelines() {
		s.reads.busy++
		s.reads.mu.Unlock()
		s.pipeline(ctx, []*read{r})
		return r.value, r.found, r.err
	}
	r.done = make(chan struct{})
	s.reads.queue = append(s.reads.queue, r)
	s.reads.mu.Unlock()
	select {
	case <-r.done:
		return r.value, r.found, r.err
	case <-ctx.Done():
		// The read stays queued and is sent; its result is dropped.
		return nil, false, fmt.Errorf("redisstore: find: %w", ctx.Err())
	}
}

func (s *RedisStore) readPipelines() int {
	if s.ReadPipelines > 0 {
		return s.ReadPipelines
	}
	return DefaultReadPipelines
}

// pipeline sends batch on a connection of the pool, holding one of the
// ReadPipelines places. Then, if reads queued meanwhile, it hands the
// place and the queue to a new goroutine, which sends them as the next
// pipeline: the caller that sent batch has its result and goes on,
// without waiting for reads of other requests.
func (s *RedisStore) pipeline(ctx context.Context, batch []*read) {
	s.send(ctx, batch)
	s.reads.mu.Lock()
	next := s.reads.queue
	s.reads.queue = nil
	if len(next) == 0 {
		s.reads.busy--
	}
	s.reads.mu.Unlock()
	if len(next) > 0 {
		// Nobody waits on this pipeline as a whole, only each read on its
		// own done, so no one request's context may cancel it.
		go s.pipeline(context.Background(), next)
	}
}

// send does the GETs of batch and closes the done channels it has.
func (s *RedisStore) send(ctx context.Context, batch []*read) {
	defer func() {
		for _, r := range batch {
			if r.done != nil {
				close(r.done)
			}
		}
	}()
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		fail(batch, fmt.Errorf("redisstore: find: %w", err))
		return
	}
	defer conn.Close()
	if len(batch) == 1 {
		batch[0].reply(conn.Do("GET", batch[0].key))
		return
	}
	for _, r := range batch {
		if err := conn.Send("GET", r.key); err != nil {
			fail(batch, err)
			return
		}
	}
	if err := conn.Flush(); err != nil {
		fail(batch, err)
		return
	}
	for i, r := range batch {
		r.reply(conn.Receive())
		if err := conn.Err(); err != nil {
			// The connection is broken: no further reply will come.
			fail(batch[i+1:], err)
			return
		}
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

func fail(batch []*read, err error) {
	for _, r := range batch {
		r.value, r.found, r.err = nil, false, err
	}
}
