// Package replica shares the work of several imagehook processes over one PostgreSQL journal.
// Any replica accepts webhooks (the journal insert is the promise); exactly one works each queue
// (a repository, or a cluster's direct-only queue) at a time.
//
// Ownership is a PostgreSQL session-level advisory lock per queue, held on one dedicated
// connection — not lease rows with heartbeats: a lock needs no clocks and no renewal, and it is
// released by PostgreSQL the moment the owner's session ends, which a killed process's closed
// socket makes immediate (TCP keepalives bound the case of a silent network). The other replicas
// try for unowned queues every second, so a queue is taken over within a second or two of its
// owner dying, and the new owner continues from the journal; the commits' trailers say which events
// already landed, so none is applied twice.
//
// The same connection LISTENs: "imagehook_events" carries the queue of an event journaled by a
// replica that does not own it (the owner picks it up at once), and "imagehook_done" the ids of
// finished events, so a ?wait= caller is answered whichever replica accepted its webhook.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Updater is what the coordinator drives in the local flow.
type Updater interface {
	// Resume queues the journal's unfinished events of a queue this replica now works.
	Resume(ctx context.Context, key string) error
	// Take queues one event journaled by another replica for a queue this replica works.
	Take(ctx context.Context, id string) error
	// Wake answers the ?wait= callers of an event finished by another replica.
	Wake(id string)
}

const (
	eventsChannel = "imagehook_events"
	doneChannel   = "imagehook_done"
	// claimEvery paces the tries for queues nobody owns.
	claimEvery = time.Second
	// sweepEvery re-reads the owned queues from the journal in case a notification was missed
	// (notifications sent while a connection was down are lost).
	sweepEvery = 5 * time.Second
	// takeoverGrace separates winning a queue's lock from working it.
	takeoverGrace = time.Second
)

// Coordinator is this replica's part in the sharing.
type Coordinator struct {
	dsn  string
	keys []string
	log  *slog.Logger
	pool *pgxpool.Pool

	mu      sync.Mutex
	owned   map[string]bool
	u       Updater
	running map[string]bool // a Resume in flight per queue
	again   map[string]bool // asked again while in flight
}

// New prepares a coordinator for the queues keys (every replica must be given the same keys).
func New(ctx context.Context, dsn string, keys []string, log *slog.Logger) (*Coordinator, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("replica: the PostgreSQL DSN does not parse")
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	return &Coordinator{dsn: dsn, keys: keys, log: log.With("component", "replica"), pool: pool,
		owned: map[string]bool{}, running: map[string]bool{}, again: map[string]bool{}}, nil
}

// SetUpdater connects the local flow (before Run).
func (c *Coordinator) SetUpdater(u Updater) { c.u = u }

// Owns reports whether this replica works the queue now.
func (c *Coordinator) Owns(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owned[key]
}

// Owned lists the queues this replica works, for logs and metrics.
func (c *Coordinator) Owned() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.owned {
		out = append(out, k)
	}
	return out
}

// Submitted tells the owner of key that event id was journaled for it.
func (c *Coordinator) Submitted(ctx context.Context, key, id string) {
	if _, err := c.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, eventsChannel, wire(key)+"\n"+id); err != nil {
		// The owner's sweep finds the event within seconds all the same.
		c.log.Warn("notify the owner of a queue", "queue", key, "err", err)
	}
}

// Finished tells the replicas that events are done.
func (c *Coordinator) Finished(ctx context.Context, ids []string) {
	// A notification's payload is limited to 8000 bytes: send the ids in chunks.
	for len(ids) > 0 {
		n := min(len(ids), 200)
		if _, err := c.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, doneChannel, strings.Join(ids[:n], ",")); err != nil {
			c.log.Warn("notify finished events", "err", err)
			return
		}
		ids = ids[n:]
	}
}

// Close releases the pool.
func (c *Coordinator) Close() { c.pool.Close() }

// Run holds this replica's session until ctx ends: it claims queues, follows notifications and,
// when the session breaks (the database restarted, the network failed), gives up every queue —
// its locks are gone — and starts over.
func (c *Coordinator) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.session(ctx)
		c.release()
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("replica session lost; queues released, reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(claimEvery):
		}
	}
}

func (c *Coordinator) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owned = map[string]bool{}
}

func (c *Coordinator) session(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(c.dsn)
	if err != nil {
		return errors.New("the PostgreSQL DSN does not parse")
	}
	// A silent network must not leave the locks held (by the server) or believed held (here)
	// for long.
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["tcp_keepalives_idle"] = "5"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "2"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range []string{eventsChannel, doneChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	nextClaim, nextSweep := time.Time{}, time.Now().Add(sweepEvery)
	for ctx.Err() == nil {
		if now := time.Now(); now.After(nextClaim) {
			if err := c.claim(ctx, conn); err != nil {
				return err
			}
			nextClaim = now.Add(claimEvery)
		}
		if now := time.Now(); now.After(nextSweep) {
			for _, k := range c.Owned() {
				c.resume(ctx, k)
			}
			nextSweep = now.Add(sweepEvery)
		}
		wctx, cancel := context.WithTimeout(ctx, claimEvery/2)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				continue
			}
			return err
		}
		switch n.Channel {
		case eventsChannel:
			key, id, _ := strings.Cut(n.Payload, "\n")
			if k := unwire(key); c.Owns(k) && c.u != nil {
				if err := c.u.Take(ctx, id); err != nil {
					c.resume(ctx, k) // the sweep's way, then
				}
			}
		case doneChannel:
			if c.u != nil {
				for _, id := range strings.Split(n.Payload, ",") {
					c.u.Wake(id)
				}
			}
		}
	}
	return ctx.Err()
}

// claim tries for every queue nobody owns; a queue won is resumed from the journal.
func (c *Coordinator) claim(ctx context.Context, conn *pgx.Conn) error {
	for _, k := range c.keys {
		if c.Owns(k) {
			continue
		}
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, "imagehook:"+wire(k)).Scan(&got); err != nil {
			return err
		}
		if got {
			// A killed owner's last push may still be completing on the git server: work the
			// queue only after a grace, so that the trailers of that push are seen first.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(takeoverGrace):
			}
			c.mu.Lock()
			c.owned[k] = true
			c.mu.Unlock()
			c.log.Info("this replica now works the queue", "queue", printable(k))
			c.resume(ctx, k)
		}
	}
	return nil
}

// resume asks the flow to queue key's unfinished events, one scan at a time per queue.
func (c *Coordinator) resume(ctx context.Context, key string) {
	if c.u == nil {
		return
	}
	c.mu.Lock()
	if c.running[key] {
		c.again[key] = true
		c.mu.Unlock()
		return
	}
	c.running[key] = true
	c.mu.Unlock()
	go func() {
		for {
			if err := c.u.Resume(ctx, key); err != nil && ctx.Err() == nil {
				c.log.Warn("resume a queue from the journal", "queue", printable(key), "err", err)
			}
			c.mu.Lock()
			if !c.again[key] {
				c.running[key] = false
				c.mu.Unlock()
				return
			}
			c.again[key] = false
			c.mu.Unlock()
		}
	}()
}

// printable shows a queue key in logs (direct-only queues start with a NUL).
func printable(k string) string { return strings.ReplaceAll(k, "\x00", "") }

// wire spells a queue key for PostgreSQL, whose text cannot hold the NUL that starts the keys of
// direct-only queues; unwire reads it back.
func wire(k string) string   { return strings.ReplaceAll(k, "\x00", "\u2400") }
func unwire(s string) string { return strings.ReplaceAll(s, "\u2400", "\x00") }
