// Package replica shares the work of several imagehook processes over one PostgreSQL journal.
// Any replica accepts webhooks (the journal insert is the promise); exactly one works each queue
// (a repository, or a cluster's direct-only queue) at a time.
//
// Ownership is a PostgreSQL session-level advisory lock per queue, held on one dedicated
// connection — not lease rows with heartbeats: a lock needs no clocks, and it is released by
// PostgreSQL the moment the owner's session ends, which a killed process's closed socket makes
// immediate. The other replicas try for unowned queues every second, so a queue is taken over
// within a second or two of its owner's session ending, and the new owner continues from the
// journal; the commits' trailers say which events already landed, so none is applied twice.
//
// A replica's memory of its locks is not proof that it still holds them: its session may have
// been ended by the server (or cut by the network) without a word reaching it. So the owner proves
// the lock on its lock connection, with a deadline, right before every push attempt (Prove), and
// the same query, every second, is the session's heartbeat. A session that cannot answer in time
// is ended and its queues given up. The server ends a session that stays silent past
// idle_session_timeout (a stopped process, a partition), and the client's TCP keepalives and
// TCP_USER_TIMEOUT notice a silent network within seconds.
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
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Updater is what the coordinator drives in the local flow.
type Updater interface {
	// Resume queues the journal's unfinished events of a queue this replica now works.
	Resume(ctx context.Context, key string) error
	// Take queues one event journaled by another replica for a queue (key) this replica works.
	// It must not block: it is called from the loop that reads the notifications.
	Take(key, id string)
	// Wake answers the ?wait= callers of an event finished by another replica.
	Wake(id string)
}

const (
	eventsChannel = "imagehook_events"
	doneChannel   = "imagehook_done"
	// claimEvery paces the tries for queues nobody owns, and the heartbeat that proves the locks
	// held.
	claimEvery = time.Second
	// sweepEvery re-reads the owned queues from the journal in case a notification was missed
	// (notifications sent while a connection was down are lost).
	sweepEvery = 5 * time.Second
	// proveWithin bounds a proof of ownership: a lock connection that cannot answer in this time
	// is taken for lost.
	proveWithin = 2 * time.Second
	// silentFor is how long the lock session may stay silent before it is ended: by the server
	// (idle_session_timeout: the heartbeat speaks every claimEvery) and by the client's kernel
	// (TCP_USER_TIMEOUT for unacknowledged data, keepalives for an idle socket).
	silentFor = 5 * time.Second
	// connectWithin bounds a connection attempt, whose packets a partition may swallow.
	connectWithin = 5 * time.Second
	// applicationName marks the lock session in pg_stat_activity, for operators and tests.
	applicationName = "imagehook-replica-lock"
)

// Errors of Prove, for the callers that branch on why a queue is not theirs.
var (
	// ErrNotOwner: this replica does not work the queue (it never won it, or gave it up).
	ErrNotOwner = errors.New("this replica does not work the queue")
	// ErrNotHeld: the database says this replica's session holds no lock on the queue.
	ErrNotHeld = errors.New("the database says this replica's session does not hold the queue's lock")
	// ErrUnproven: the lock connection did not answer in time (or broke); its session is ended and
	// every queue given up.
	ErrUnproven = errors.New("the lock connection did not prove the queue's lock")
)

// Coordinator is this replica's part in the sharing.
type Coordinator struct {
	dsn  string
	keys []string
	log  *slog.Logger
	pool *pgxpool.Pool

	mu      sync.Mutex
	owned   map[string]bool
	sess    *session        // the lock session, nil between sessions
	running map[string]bool // a Resume in flight per queue
	again   map[string]bool // asked again while in flight

	// notices feeds the notifier (unbuffered: a notice is taken only by the notifier, which
	// answers every one it took); quit stops it and notified closes when it has.
	notices   chan notice
	quit      chan struct{}
	notified  chan struct{}
	closeOnce sync.Once
}

// session is one connection's life: the locks it holds die with it. Its loop is the only user of
// the connection; Prove hands it queries through proofs.
type session struct {
	proofs chan proof
	done   chan struct{}
	end    context.CancelCauseFunc

	mu   sync.Mutex
	wake context.CancelFunc // interrupts the loop's wait for a notification
}

// proof asks the session loop which of keys its connection holds.
type proof struct {
	keys  []string
	reply chan proofAnswer
}

type proofAnswer struct {
	held map[string]bool
	took time.Duration
	err  error
}

// interrupt ends the loop's current wait, so that a proof is answered at once.
func (s *session) interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake != nil {
		s.wake()
	}
}

// New prepares a coordinator for the queues keys (every replica must be given the same keys).
func New(ctx context.Context, dsn string, keys []string, log *slog.Logger) (*Coordinator, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("replica: the PostgreSQL DSN does not parse")
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.DialFunc = dialer().DialContext
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	c := &Coordinator{dsn: dsn, keys: keys, log: log.With("component", "replica"), pool: pool,
		owned: map[string]bool{}, running: map[string]bool{}, again: map[string]bool{},
		notices: make(chan notice), quit: make(chan struct{}), notified: make(chan struct{})}
	go c.notifier()
	if !userTimeoutSupported {
		c.log.Info("this platform has no TCP_USER_TIMEOUT: a query into a silent network is bounded by the ownership proof's deadline and the server's idle_session_timeout only")
	}
	return c, nil
}

// Owns reports whether this replica believes it works the queue now: enough to route work, not
// to write (Prove).
func (c *Coordinator) Owns(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owned[key]
}

// Prove checks, on the lock connection and within proveWithin, that this replica's session still
// holds the queue's lock, for a caller about to write as the queue's owner. A lock the database
// says is not held gives the queue up; a connection that does not answer in time ends the session
// (every queue is given up, and the others may take them over).
func (c *Coordinator) Prove(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, proveWithin)
	defer cancel()
	c.mu.Lock()
	s, owned := c.sess, c.owned[key]
	c.mu.Unlock()
	if s == nil || !owned {
		return fmt.Errorf("queue %s: %w", printable(key), ErrNotOwner)
	}
	p := proof{keys: []string{key}, reply: make(chan proofAnswer, 1)}
	var a proofAnswer
	select {
	case s.proofs <- p:
		s.interrupt()
		select {
		case a = <-p.reply:
		case <-s.done:
			a.err = errors.New("the lock session ended")
		case <-ctx.Done():
			a.err = context.Cause(ctx)
		}
	case <-s.done:
		a.err = errors.New("the lock session ended")
	case <-ctx.Done():
		a.err = context.Cause(ctx)
	}
	if a.err != nil {
		err := fmt.Errorf("queue %s: %w: %w", printable(key), ErrUnproven, a.err)
		c.log.Warn("ownership not proven; ending the lock session and giving up its queues", "queue", printable(key), "err", err)
		c.endSession(s, err)
		return err
	}
	if !a.held[key] {
		c.drop(key)
		err := fmt.Errorf("queue %s: %w", printable(key), ErrNotHeld)
		c.log.Warn("queue given up", "queue", printable(key), "err", err)
		return err
	}
	c.log.Debug("ownership proven", "queue", printable(key), "took", a.took)
	return nil
}

// endSession gives up every queue of s at once (its locks cannot be vouched for) and ends it.
func (c *Coordinator) endSession(s *session, cause error) {
	c.mu.Lock()
	if c.sess == s {
		c.owned = map[string]bool{}
	}
	c.mu.Unlock()
	s.end(cause)
}

// drop gives up one queue whose lock the session no longer holds.
func (c *Coordinator) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.owned, key)
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

// Submitted tells the owner of key that event id was journaled for it, and returns once the
// notification is sent (or failed: the owner's sweep finds the event within seconds all the
// same). Events submitted together are told in one statement (notifier).
func (c *Coordinator) Submitted(ctx context.Context, key, id string) {
	n := notice{key: wire(key), id: id, done: make(chan struct{})}
	select {
	case c.notices <- n:
		<-n.done
	case <-c.quit:
		c.log.Warn("owner of a queue not notified: the coordinator is closed; its sweep finds the event", "queue", printable(key), "event", id)
	case <-ctx.Done():
		c.log.Warn("owner of a queue not notified: the caller gave up; its sweep finds the event", "queue", printable(key), "event", id, "err", context.Cause(ctx))
	}
}

// notice is one event to tell its queue's owner of.
type notice struct {
	key, id string
	done    chan struct{}
}

// maxNotices bounds the notifications sent in one statement.
const maxNotices = 512

// notifier sends the notices waiting at each moment in one statement (one round trip, one
// transaction, which PostgreSQL delivers in order), until Close.
func (c *Coordinator) notifier() {
	defer close(c.notified)
	for {
		var batch []notice
		select {
		case n := <-c.notices:
			batch = append(batch, n)
		case <-c.quit:
			return
		}
	more:
		for len(batch) < maxNotices {
			select {
			case n := <-c.notices:
				batch = append(batch, n)
			default:
				break more
			}
		}
		payloads := pack(batch)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := c.pool.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, eventsChannel, payloads); err != nil {
			c.log.Warn("notify the owners of queues; their sweeps find the events", "events", len(batch), "err", err)
		}
		cancel()
		for _, n := range batch {
			close(n.done)
		}
	}
}

// maxPayload bounds a notification's payload: PostgreSQL refuses one of 8000 bytes or more.
const maxPayload = 7900

// pack spells the notices as notifications, one per queue (more when its ids do not fit in
// one), each the queue's key and its ids, one per line, in the order they came: every replica
// reads every notification, so one per queue instead of one per event saves each of them (and
// the server) a notification per event.
func pack(batch []notice) []string {
	var bufs []*strings.Builder
	open := map[string]*strings.Builder{} // each key's last notification
	for _, n := range batch {
		b := open[n.key]
		if b != nil && b.Len()+1+len(n.id) <= maxPayload {
			b.WriteByte('\n')
			b.WriteString(n.id)
			continue
		}
		b = &strings.Builder{}
		b.WriteString(n.key)
		b.WriteByte('\n')
		b.WriteString(n.id)
		open[n.key] = b
		bufs = append(bufs, b)
	}
	payloads := make([]string, len(bufs))
	for i, b := range bufs {
		payloads[i] = b.String()
	}
	return payloads
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

// Close stops the notifier and releases the pool.
func (c *Coordinator) Close() {
	c.closeOnce.Do(func() { close(c.quit) })
	<-c.notified
	c.pool.Close()
}

// Run holds this replica's session until ctx ends: it claims queues, hands each one won to u (the
// local flow), follows notifications and, when the session breaks (the database restarted, the
// network failed, a proof went unanswered), gives up every queue — its locks are gone, or cannot be
// vouched for — and starts over. u is an argument, not a field set beforehand, because the updater
// is built after the coordinator (the coordinator is its Peers): taking u here means no queue can
// be won before there is a flow to hand it to. A nil u only claims and proves queues.
func (c *Coordinator) Run(ctx context.Context, u Updater) {
	for ctx.Err() == nil {
		err := c.session(ctx, u)
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

// lockConfig is the lock session's connection: its silences are bounded on both ends.
func (c *Coordinator) lockConfig() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(c.dsn)
	if err != nil {
		return nil, errors.New("the PostgreSQL DSN does not parse")
	}
	cfg.DialFunc = dialer().DialContext
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > connectWithin {
		cfg.ConnectTimeout = connectWithin
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// The server's side of the keepalives, for a peer that vanished.
	cfg.RuntimeParams["tcp_keepalives_idle"] = "5"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "2"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cfg.RuntimeParams["application_name"] = applicationName
	return cfg, nil
}

func (c *Coordinator) session(ctx context.Context, u Updater) error {
	cfg, err := c.lockConfig()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	sctx, end := context.WithCancelCause(ctx)
	s := &session{proofs: make(chan proof, 16), done: make(chan struct{}), end: end}
	defer func() {
		c.mu.Lock()
		c.sess = nil
		c.owned = map[string]bool{}
		c.mu.Unlock()
		close(s.done)
		end(nil)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if err := prepare(sctx, conn, c.log); err != nil {
		return err
	}
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	nextClaim, nextSweep := time.Time{}, time.Now().Add(sweepEvery)
	for sctx.Err() == nil {
		if err := c.answer(sctx, conn, s); err != nil {
			return err
		}
		if now := time.Now(); now.After(nextClaim) {
			if err := c.heartbeat(sctx, conn); err != nil {
				return err
			}
			if err := c.claim(sctx, ctx, conn, u); err != nil {
				return err
			}
			nextClaim = now.Add(claimEvery)
		}
		if now := time.Now(); now.After(nextSweep) {
			for _, k := range c.Owned() {
				c.resume(ctx, u, k)
			}
			nextSweep = now.Add(sweepEvery)
		}
		n, err := s.wait(sctx, conn)
		if err != nil {
			return err
		}
		if n != nil {
			c.onNotification(n, u)
		}
	}
	return context.Cause(sctx)
}

// prepare bounds the session's silence and listens on the channels.
func prepare(ctx context.Context, conn *pgx.Conn, log *slog.Logger) error {
	// A stopped or cut-off owner's session is ended by the server once it has been silent for
	// silentFor, which frees its locks; the heartbeat keeps a live one speaking.
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET idle_session_timeout = '%dms'", silentFor.Milliseconds())); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42704" {
			return err
		}
		log.Warn("this PostgreSQL has no idle_session_timeout (it came in PostgreSQL 14): a stopped owner keeps its queues until the server's TCP keepalives end its session", "err", err)
	}
	for _, ch := range []string{eventsChannel, doneChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	return nil
}

// wait waits for a notification, at most claimEvery/2 and only until a proof is asked for: nil
// and no error when the wait ended without one.
func (s *session) wait(sctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	wctx, cancel := context.WithTimeout(sctx, claimEvery/2)
	defer cancel()
	s.mu.Lock()
	s.wake = cancel
	s.mu.Unlock()
	if len(s.proofs) > 0 {
		return nil, nil // asked before this wait's interrupt was in place: answer first
	}
	n, err := conn.WaitForNotification(wctx)
	if err != nil {
		if wctx.Err() != nil && sctx.Err() == nil {
			return nil, nil // the wait's pace, or a proof to answer
		}
		if sctx.Err() != nil {
			return nil, context.Cause(sctx)
		}
		return nil, err
	}
	return n, nil
}

// onNotification acts on a notification: an event journaled for a queue this replica owns is taken,
// the waiters of events finished elsewhere are woken.
func (c *Coordinator) onNotification(n *pgconn.Notification, u Updater) {
	if u == nil {
		return
	}
	switch n.Channel {
	case eventsChannel:
		key, ids, _ := strings.Cut(n.Payload, "\n")
		if k := unwire(key); c.Owns(k) {
			for id := range strings.SplitSeq(ids, "\n") {
				u.Take(k, id)
			}
		}
	case doneChannel:
		for _, id := range strings.Split(n.Payload, ",") {
			u.Wake(id)
		}
	}
}

// answer runs the proofs waiting for the connection.
func (c *Coordinator) answer(ctx context.Context, conn *pgx.Conn, s *session) error {
	for {
		select {
		case p := <-s.proofs:
			started := time.Now()
			held, err := held(ctx, conn, p.keys)
			p.reply <- proofAnswer{held: held, took: time.Since(started), err: err}
			if err != nil {
				return fmt.Errorf("prove the queues' locks: %w", err)
			}
		default:
			return nil
		}
	}
}

// heartbeat proves every lock this replica believes it holds, which also keeps the session
// speaking (idle_session_timeout) and finds a connection that stopped answering. A queue whose
// lock is gone is given up.
func (c *Coordinator) heartbeat(ctx context.Context, conn *pgx.Conn) error {
	keys := c.Owned()
	got, err := held(ctx, conn, keys)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	for _, k := range keys {
		if !got[k] {
			c.drop(k)
			c.log.Warn("queue given up", "queue", printable(k), "err", fmt.Errorf("queue %s: %w", printable(k), ErrNotHeld))
		}
	}
	return nil
}

// held asks which of keys this connection's session holds the advisory lock of. A lock taken with
// one bigint key shows in pg_locks as its high half (classid), its low half (objid) and objsubid 1.
func held(ctx context.Context, conn *pgx.Conn, keys []string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, proveWithin)
	defer cancel()
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = lockName(k)
	}
	rows, err := conn.Query(ctx, `SELECT k FROM unnest($1::text[]) AS k
		WHERE EXISTS (SELECT 1 FROM pg_locks l
			WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.objsubid = 1
			AND l.classid = ((hashtext(k)::bigint >> 32) & 4294967295)::oid
			AND l.objid = (hashtext(k)::bigint & 4294967295)::oid)`, names)
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for i, n := range names {
		byName[n] = keys[i]
	}
	out := map[string]bool{}
	for _, n := range got {
		out[byName[n]] = true
	}
	return out, nil
}

// lockName is the text whose hash is a queue's advisory lock key (every replica version must
// spell it alike, or two could own one queue).
func lockName(key string) string { return "imagehook:" + wire(key) }

// claim tries for every queue nobody owns; a queue won is resumed from the journal at once: a
// stale owner's push still in flight is fenced by its own proof, or found by the new owner's
// trailers when it lands first.
// Queries run under ctx (the session's); resumes under work (the replica's).
func (c *Coordinator) claim(ctx, work context.Context, conn *pgx.Conn, u Updater) error {
	// One round trip for all unowned queues, however many: a slow link must not make the session
	// loop late for the proofs it answers.
	byName := map[string]string{}
	var names []string
	for _, k := range c.keys {
		if !c.Owns(k) {
			byName[lockName(k)] = k
			names = append(names, lockName(k))
		}
	}
	if len(names) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT k FROM unnest($1::text[]) AS k WHERE pg_try_advisory_lock(hashtext(k))`, names)
	if err != nil {
		return err
	}
	won, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range won {
		k := byName[name]
		c.mu.Lock()
		c.owned[k] = true
		c.mu.Unlock()
		c.log.Info("this replica now works the queue", "queue", printable(k))
		c.resume(work, u, k)
	}
	return nil
}

// resume asks the flow u to queue key's unfinished events, one scan at a time per queue.
func (c *Coordinator) resume(ctx context.Context, u Updater, key string) {
	if u == nil {
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
			if err := u.Resume(ctx, key); err != nil && ctx.Err() == nil {
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
