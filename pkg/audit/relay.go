package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/metrics"
)

// The audit stream: every event, as the API shows it (JSON), on NATS JetStream subject
// `authplane.audit.<tenant>`, at least once.
//
// A request never talks to NATS: Log.write puts the event in the outbox table, in the transaction of its change,
// and a Relay publishes the outbox in the background. So an outage of NATS neither loses an event (it waits in
// the outbox, however long) nor slows a request (it only inserts a row). The relay claims a batch of rows (a
// lease, so relays of several processes on one PostgreSQL never publish a row at the same time, and rows of a
// relay that died are taken over when its lease lapses), publishes each with header Nats-Msg-Id = the row's id,
// waits for the stream's acknowledgement and deletes what was acknowledged. A row whose publish failed stays and
// is published again after a backoff; if it had in fact been stored (an acknowledgement lost), the stream's
// duplicate window drops the second copy.
//
// Order: one relay publishes its batches oldest first, in id order (ids sort by time), waiting for each batch's
// acknowledgements before the next. So, per tenant, the stream holds events in id order as far as one relay goes,
// except that an event whose publish failed is retried after later ones of its batch were stored; events whose
// transactions commit out of order, or that relays of two processes publish, may also interleave. Consumers that
// need strict order sort by id (or time).

const (
	// DefaultStream is the JetStream stream a relay creates when none of that name exists.
	DefaultStream = "AUTHPLANE_AUDIT"
	// SubjectPrefix starts every subject: `authplane.audit.<tenant>`.
	SubjectPrefix = "authplane.audit"
	// DuplicateWindow is the duplicate window of a stream the relay creates.
	DuplicateWindow = 2 * time.Minute
)

// RelayConfig is where and how a relay streams.
type RelayConfig struct {
	// URL is the NATS server (or a comma list of a cluster's), e.g. `nats://user:password@nats:4222` or
	// `tls://nats:4222`.
	URL string
	// Stream is the stream's name (DefaultStream if empty); created when missing, never changed when present.
	Stream string
	// MaxAge bounds how long a stream the relay creates keeps events (0: forever).
	MaxAge time.Duration
	// Name names the connection on the NATS server (its connz), e.g. the process's services.
	Name    string
	Logger  *slog.Logger
	Metrics *metrics.Metrics
}

// Relay publishes the outbox of a Log to NATS JetStream (see above). Run runs it.
type Relay struct {
	log    *Log
	cfg    RelayConfig
	logger *slog.Logger
	m      *metrics.Metrics

	// reconnected wakes the relay when NATS is back, cutting its backoff short.
	reconnected chan struct{}
	// streamReady: the stream was found or created since the last sign of its absence.
	streamReady bool
	nextBacklog time.Time

	batch          int
	poll           time.Duration // how often the outbox is looked at when nothing woke the relay
	gather         time.Duration // pause after a wake: the change commits, a burst becomes one batch
	lease          time.Duration // how long a claim keeps other relays off a row
	publishTimeout time.Duration // longest wait for a batch's acknowledgements
	backoffMin     time.Duration
	backoffMax     time.Duration
	backlogEvery   time.Duration
}

// NewRelay returns the relay of l's outbox; l must have been opened to stream.
func (l *Log) NewRelay(cfg RelayConfig) (*Relay, error) {
	if !l.stream {
		return nil, errors.New("audit: the log was opened without streaming: its events never enter the outbox")
	}
	if err := ValidateNATSURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if err := ValidateStreamName(cfg.Stream); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	return &Relay{
		log: l, cfg: cfg, logger: cfg.Logger.With("component", "audit-stream"), m: cfg.Metrics,
		reconnected: make(chan struct{}, 1),
		batch:       100, poll: 500 * time.Millisecond, gather: 20 * time.Millisecond, lease: 30 * time.Second,
		publishTimeout: 5 * time.Second, backoffMin: 100 * time.Millisecond, backoffMax: 10 * time.Second,
		backlogEvery: 5 * time.Second,
	}, nil
}

// ValidateNATSURL checks a NATS URL (or comma list) as the relay will use it: each entry a URL with a host.
func ValidateNATSURL(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return errors.New("no NATS URL")
	}
	for _, s := range strings.Split(raw, ",") {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "://") {
			s = "nats://" + s // nats.go reads `host:port` as a nats:// URL
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a NATS URL (nats://host:4222)", redactURL(s))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: the scheme must be nats, tls, ws or wss", redactURL(s))
		}
	}
	return nil
}

var streamNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// ValidateStreamName checks a JetStream stream name (no dots, wildcards, spaces or path separators).
func ValidateStreamName(name string) error {
	if !streamNamePattern.MatchString(name) {
		return fmt.Errorf("%q is not a stream name: use letters, digits, _ and -", name)
	}
	return nil
}

// redactURL drops the credentials of NATS URLs (user and password, or a token in the user part) for the log.
func redactURL(raw string) string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			s = u.String()
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// subjectTokenPattern is what a subject's tenant token may hold: tenant ids (`^[a-z][a-z0-9-]+$`) always match.
var subjectTokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Subject is the subject of a tenant's events. An event of no tenant, or of an id that cannot be a subject token,
// goes to `authplane.audit._`.
func Subject(tenantID string) string {
	if !subjectTokenPattern.MatchString(tenantID) {
		tenantID = "_"
	}
	return SubjectPrefix + "." + tenantID
}

var errNotConnected = errors.New("not connected to NATS")

// Run streams until ctx ends: it connects (retrying for ever, in the background, while NATS is down), then
// publishes the outbox whenever an event of this process enters it, and every poll interval for the others'.
func (r *Relay) Run(ctx context.Context) {
	r.logger.Info("audit stream on", "nats", redactURL(r.cfg.URL), "stream", r.cfg.Stream)
	nc, js := r.connect(ctx)
	if nc == nil {
		return
	}
	defer nc.Close()

	backoff := r.backoffMin
	failing := false
	for {
		progress, err := r.drain(ctx, nc, js)
		r.reportBacklog(ctx)
		if ctx.Err() != nil {
			return
		}
		wait, wake := r.poll, r.log.wake
		if err != nil {
			if !failing {
				r.logger.Warn("audit stream: publishing failed; the events wait in the outbox and are retried", "error", err)
				failing = true
			} else {
				r.logger.Debug("audit stream: publishing failed again", "error", err)
			}
			if progress {
				backoff = r.backoffMin
			}
			// Equal jitter: half the backoff, plus up to as much again at random, so relays do not retry in step.
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, r.backoffMax)
			// New events do not cut a backoff short (they would make every request a retry), a reconnection does.
			wake = nil
		} else {
			if failing {
				r.logger.Info("audit stream: publishing again")
				failing = false
			}
			backoff = r.backoffMin
		}
		if !r.sleep(ctx, wait, wake) {
			return
		}
	}
}

// sleep waits d, or until wake or a reconnection; false when ctx ended.
func (r *Relay) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-r.reconnected:
	case <-wake:
		// The change's transaction commits meanwhile, and a burst of events becomes one batch.
		t.Reset(r.gather)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// connect connects to NATS. While the server is down, nats.go keeps trying (RetryOnFailedConnect, for ever) and
// the relay finds the connection not yet up; nil only when ctx ends before an invalid configuration could be.
func (r *Relay) connect(ctx context.Context) (*nats.Conn, jetstream.JetStream) {
	opts := []nats.Option{
		nats.Name(r.cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		// No buffering while reconnecting: a publish then fails at once, and the row waits in the outbox.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) {
			r.m.AuditStreamConnected.Set(1)
			r.logger.Info("audit stream: connected to NATS")
			r.signalReconnected()
		}),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			r.m.AuditStreamConnected.Set(0)
			if !c.IsClosed() { // not the relay's own close at shutdown
				r.logger.Warn("audit stream: disconnected from NATS; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			r.m.AuditStreamConnected.Set(1)
			r.logger.Info("audit stream: reconnected to NATS")
			r.signalReconnected()
		}),
		nats.ClosedHandler(func(*nats.Conn) { r.m.AuditStreamConnected.Set(0) }),
	}
	backoff := r.backoffMin
	for {
		nc, err := nats.Connect(r.cfg.URL, opts...)
		if err == nil {
			js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(r.publishTimeout),
				jetstream.WithPublishAsyncMaxPending(4*r.batch))
			if err == nil {
				if nc.IsConnected() {
					r.m.AuditStreamConnected.Set(1)
				}
				return nc, js
			}
			nc.Close()
		}
		r.logger.Error("audit stream: cannot set up the NATS connection", "error", err)
		if !r.sleep(ctx, backoff, nil) {
			return nil, nil
		}
		backoff = min(2*backoff, r.backoffMax)
	}
}

func (r *Relay) signalReconnected() {
	select {
	case r.reconnected <- struct{}{}:
	default:
	}
}

// drain publishes batches until the outbox holds no row free to claim, or one fails; progress says whether any
// event was acknowledged.
func (r *Relay) drain(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (progress bool, err error) {
	for ctx.Err() == nil {
		if !nc.IsConnected() {
			return progress, errNotConnected
		}
		if !r.streamReady {
			if err := r.ensureStream(ctx, js); err != nil {
				return progress, err
			}
			r.streamReady = true
		}
		rows, err := r.claim(ctx)
		if err != nil {
			return progress, fmt.Errorf("claim outbox rows: %w", err)
		}
		if len(rows) == 0 {
			return progress, nil
		}
		res := r.publish(js, rows)
		// What was acknowledged is deleted even when the process is stopping, so that it is not sent again.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.publishTimeout)
		serr := r.settle(sctx, res)
		cancel()
		if len(res.acked) > 0 {
			progress = true
		}
		switch {
		case serr != nil:
			return progress, fmt.Errorf("settle outbox rows (their leases lapse, then they are sent again): %w", serr)
		case res.err != nil:
			if errors.Is(res.err, jetstream.ErrNoStreamResponse) {
				r.streamReady = false // no stream holds the subject (a NATS with a fresh store): make it again
			}
			return progress, res.err
		case len(rows) < r.batch:
			return progress, nil
		}
	}
	return progress, nil
}

// ensureStream creates the stream when none of its name exists. A stream that exists is left as its operator
// configured it; one under another name that already holds the subjects is used as it is.
func (r *Relay) ensureStream(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, r.publishTimeout)
	defer cancel()
	_, err := js.Stream(ctx, r.cfg.Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", r.cfg.Stream, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        r.cfg.Stream,
		Description: "Authplane audit events, one subject per tenant: " + SubjectPrefix + ".<tenant>",
		Subjects:    []string{SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		MaxAge:      r.cfg.MaxAge,
		Duplicates:  DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		r.logger.Info("audit stream: created stream", "stream", r.cfg.Stream, "subjects", SubjectPrefix+".>",
			"max_age", r.cfg.MaxAge.String(), "duplicate_window", DuplicateWindow.String())
		return nil
	case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		return nil // another relay made it just now
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeStreamSubjectOverlap:
		r.logger.Info("audit stream: another stream holds the subjects; publishing there", "subjects", SubjectPrefix+".>")
		return nil
	}
	return fmt.Errorf("create stream %s: %w", r.cfg.Stream, err)
}

// jsErrCodeStreamSubjectOverlap is JetStream's error code for subjects that another stream already holds.
const jsErrCodeStreamSubjectOverlap jetstream.ErrorCode = 10065

// claimed is an outbox row a relay holds the lease of.
type claimed struct {
	ID       string
	TenantID string
	Payload  string
}

// claim leases the oldest rows no relay holds. On PostgreSQL, rows another relay is claiming at this moment are
// skipped rather than waited for; SQLite has one process, whose writes take turns anyway.
func (r *Relay) claim(ctx context.Context) ([]claimed, error) {
	now := time.Now().UnixMicro()
	q := r.log.db.WithContext(ctx)
	var free []string
	// A look first, so an idle poll writes nothing (on SQLite, a write takes the database's one write lock).
	if err := q.Raw(`SELECT id FROM audit_outbox WHERE leased_until < ? LIMIT 1`, now).Scan(&free).Error; err != nil || len(free) == 0 {
		return nil, err
	}
	skipLocked := ""
	if r.log.db.Dialect == db.Postgres {
		skipLocked = " FOR UPDATE SKIP LOCKED"
	}
	var rows []claimed
	err := q.Raw(`UPDATE audit_outbox SET leased_until = ? WHERE id IN
  (SELECT id FROM audit_outbox WHERE leased_until < ? ORDER BY id LIMIT ?`+skipLocked+`)
  RETURNING id, tenant_id, payload`, now+r.lease.Microseconds(), now, r.batch).Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b claimed) int { return strings.Compare(a.ID, b.ID) })
	return rows, nil
}

// published is what became of a batch.
type published struct {
	acked   []string // stored, or already held (a duplicate)
	failed  []string // tried, not acknowledged
	untried []string // not sent: an earlier row of the batch could not be
	err     error    // the first failure
}

// publish sends a batch in id order without waiting between messages, then waits for every acknowledgement
// (bounded by the publish timeout).
func (r *Relay) publish(js jetstream.JetStream, rows []claimed) published {
	var res published
	type pending struct {
		id  string
		ack jetstream.PubAckFuture
	}
	sent := make([]pending, 0, len(rows))
	for i, row := range rows {
		msg := nats.NewMsg(Subject(row.TenantID))
		msg.Data = []byte(row.Payload)
		f, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(row.ID))
		if err != nil {
			res.failed, res.err = append(res.failed, row.ID), err
			for _, rest := range rows[i+1:] {
				res.untried = append(res.untried, rest.ID)
			}
			break
		}
		sent = append(sent, pending{row.ID, f})
	}
	// nats.go fails each future after the publish timeout; this bound only guards against one never resolved.
	deadline := time.NewTimer(r.publishTimeout + time.Second)
	defer deadline.Stop()
	expired := false
	for _, p := range sent {
		var ack *jetstream.PubAck
		var err error
		if expired {
			select {
			case ack = <-p.ack.Ok():
			case err = <-p.ack.Err():
			default:
				err = jetstream.ErrAsyncPublishTimeout
			}
		} else {
			select {
			case ack = <-p.ack.Ok():
			case err = <-p.ack.Err():
			case <-deadline.C:
				expired, err = true, jetstream.ErrAsyncPublishTimeout
			}
		}
		if err != nil {
			res.failed = append(res.failed, p.id)
			if res.err == nil {
				res.err = err
			}
			continue
		}
		res.acked = append(res.acked, p.id)
		if ack.Duplicate {
			r.m.AuditPublished.WithLabelValues("duplicate").Inc()
		} else {
			r.m.AuditPublished.WithLabelValues("stored").Inc()
		}
	}
	if n := len(res.failed); n > 0 {
		r.m.AuditPublishFailures.Add(float64(n))
	}
	return res
}

// settle deletes the acknowledged rows, and frees the others for the next try (counting the tries).
func (r *Relay) settle(ctx context.Context, res published) error {
	q := r.log.db.WithContext(ctx)
	if len(res.acked) > 0 {
		if err := q.Exec(`DELETE FROM audit_outbox WHERE id IN ?`, res.acked).Error; err != nil {
			return err
		}
	}
	if len(res.failed) > 0 {
		if err := q.Exec(`UPDATE audit_outbox SET leased_until = 0, attempts = attempts + 1 WHERE id IN ?`, res.failed).Error; err != nil {
			return err
		}
	}
	if len(res.untried) > 0 {
		if err := q.Exec(`UPDATE audit_outbox SET leased_until = 0 WHERE id IN ?`, res.untried).Error; err != nil {
			return err
		}
	}
	return nil
}

// reportBacklog counts the outbox for the backlog gauge, at most every backlogEvery.
func (r *Relay) reportBacklog(ctx context.Context) {
	if time.Now().Before(r.nextBacklog) || ctx.Err() != nil {
		return
	}
	r.nextBacklog = time.Now().Add(r.backlogEvery)
	var n int64
	if err := r.log.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM audit_outbox`).Scan(&n).Error; err != nil {
		r.logger.Debug("audit stream: counting the outbox", "error", err)
		return
	}
	r.m.AuditBacklog.Set(float64(n))
}
