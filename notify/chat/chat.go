// Package chat reports finished events to the chat tools teams live in — DingTalk, WeCom, Feishu
// (Lark), Slack — and to any receiver through a generic signed webhook, each in its own documented
// format, signature and error convention. Messages past a robot's rate limit are coalesced into the
// next one, never dropped.
package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imagehook/imagehook/outbound"

	"golang.org/x/time/rate"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/notify"
	"github.com/imagehook/imagehook/retry"
)

// Config is one robot or webhook: an entry of the config file's notifiers: section, decoded by
// package config.
type Config struct {
	Name string `yaml:"name"`
	// Type is dingtalk, wecom, feishu, slack or webhook.
	Type string `yaml:"type"`
	// URL is the robot's webhook URL; it carries the robot's access token, so it is a secret.
	URL string `yaml:"url" secret:"true"`
	// URLFile is read into URL at load.
	URLFile string `yaml:"urlFile" secretfile:"URL"`
	// Secret signs the messages: DingTalk's 加签, Feishu's 签名校验, the webhook type's HMAC.
	Secret     string `yaml:"secret" secret:"true"`
	SecretFile string `yaml:"secretFile" secretfile:"Secret"`
	// Language is zh (default) or en.
	Language string `yaml:"language"`
	// On is success and/or failure (empty: both).
	On      []string `yaml:"on"`
	Mention Mention  `yaml:"mention"`
	// RatePerMinute caps messages a minute (DingTalk and WeCom allow 20); reports past it are
	// coalesced into the next message, never dropped. Zero (a Config built in code) is no cap.
	RatePerMinute int `yaml:"ratePerMinute"`
	// Deadline bounds one message's delivery, retries included (default 1m); not in the file,
	// tests shorten it.
	Deadline time.Duration `yaml:"-"`
	// client and the retry pauses are set by New (tests shorten the pauses).
	client               *http.Client
	retryFirst, retryMax time.Duration
}

// Mention names who a message mentions, where the channel supports it.
type Mention struct {
	Mobiles []string `yaml:"mobiles"`
	UserIDs []string `yaml:"userIDs"`
	All     bool     `yaml:"all"`
}

// SetDefaults fills what a notifiers: entry leaves out (package config calls it at load): the
// language, and the channel's documented rate limit.
func (c *Config) SetDefaults() {
	if c.Language == "" {
		c.Language = "zh"
	}
	if c.RatePerMinute == 0 {
		c.RatePerMinute = DefaultRatePerMinute(c.Type)
	}
}

// ErrRejected is a robot's refusal (a bad signature, a bad payload, a revoked token).
var ErrRejected = errors.New("notification refused")

// errLimited is a robot saying "too fast": the message is sent again after a pause.
var errLimited = errors.New("rate limited by the receiver")

// Notifier sends reports to one robot. It implements notify.Notifier for the events that name it.
type Notifier struct {
	cfg     Config
	vendor  vendor
	log     *slog.Logger
	limiter *rate.Limiter

	mu      sync.Mutex
	pending []*report
	wake    chan struct{}
	once    sync.Once
}

// report is one Notify call's message, and where its outcome goes.
type report struct {
	msg  message
	done chan error
}

// New returns the notifier of cfg.
func New(cfg Config, log *slog.Logger) (*Notifier, error) {
	v, ok := vendorOf(cfg.Type)
	if !ok {
		return nil, fmt.Errorf("notifier %s: unknown type %q", cfg.Name, cfg.Type)
	}
	if cfg.client == nil {
		cfg.client = outbound.Client(15*time.Second, nil)
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = time.Minute
	}
	if cfg.retryFirst == 0 {
		cfg.retryFirst, cfg.retryMax = time.Second, 20*time.Second
	}
	n := &Notifier{cfg: cfg, vendor: v, log: log.With("notifier", cfg.Name), wake: make(chan struct{}, 1), limiter: rate.NewLimiter(rate.Inf, 1)}
	if cfg.RatePerMinute > 0 {
		n.limiter = rate.NewLimiter(rate.Every(time.Minute/time.Duration(cfg.RatePerMinute)), cfg.RatePerMinute)
	}
	return n, nil
}

// Name is the notifier's name, as hooks[].notify names it.
func (n *Notifier) Name() string { return n.cfg.Name }

// Notify sends the report of a finished event (and of the events its commit carried) when the
// event names this notifier and its outcome is one the notifier reports. It returns once the
// message carrying the report was accepted by the receiver, or failed for good, or the deadline
// passed.
func (n *Notifier) Notify(ctx context.Context, evs ...*event.Event) error {
	mine := n.Carries(evs)
	if len(mine) == 0 {
		return nil
	}
	return n.Send(ctx, compose(n.cfg.Language, mine[0], mine[1:], notify.Failed(mine[0])))
}

// Carries returns the events of a group (one commit's, the first the one the report is about)
// that name this notifier, when the outcome is one it reports: each hook's events reach its own
// robots, whichever event of the commit came first.
func (n *Notifier) Carries(evs []*event.Event) []*event.Event {
	var mine []*event.Event
	for _, ev := range evs {
		if !slices.Contains(ev.Notify, n.cfg.Name) {
			continue
		}
		failed := notify.Failed(ev)
		if len(n.cfg.On) > 0 && !slices.Contains(n.cfg.On, map[bool]string{true: "failure", false: "success"}[failed]) {
			continue
		}
		mine = append(mine, ev)
	}
	return mine
}

var _ notify.Member = (*Notifier)(nil)

// Send delivers a message through the notifier's queue (send-test-notification uses it).
func (n *Notifier) Send(ctx context.Context, m message) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Deadline)
	defer cancel()
	n.once.Do(func() { go n.run() })
	r := &report{msg: m, done: make(chan error, 1)}
	n.mu.Lock()
	n.pending = append(n.pending, r)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("notifier %s: %w", n.cfg.Name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("notifier %s: %w", n.cfg.Name, ctx.Err())
	}
}

// run sends what is pending, one message at a time within the rate: reports that arrive while it
// waits for the rate are sent together, as one message.
func (n *Notifier) run() {
	for range n.wake {
		for {
			_ = n.limiter.Wait(context.Background())
			n.mu.Lock()
			batch := n.pending
			n.pending = nil
			n.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			msgs := make([]message, len(batch))
			for i, r := range batch {
				msgs[i] = r.msg
			}
			err := n.deliver(merge(n.cfg.Language, msgs))
			for _, r := range batch {
				r.done <- err
			}
		}
	}
}

// deliver posts one message, again after transient failures (network, 5xx, "too fast").
func (n *Notifier) deliver(m message) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Deadline)
	defer cancel()
	return retry.Do(ctx, 5, retry.Backoff{First: n.cfg.retryFirst, Max: n.cfg.retryMax, Jitter: true}, func(attempt int) (bool, error) {
		err := n.post(ctx, m)
		if err != nil && attempt < 5 {
			n.log.Warn("notification failed", "attempt", attempt, "err", err)
		}
		return err != nil && !errors.Is(err, ErrRejected), err
	})
}

func (n *Notifier) post(ctx context.Context, m message) error {
	req, err := n.vendor.request(ctx, n.cfg, m, time.Now())
	if err != nil {
		return err
	}
	resp, err := n.cfg.client.Do(req)
	if err != nil {
		// The request URL holds the robot's token: say only what failed.
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return fmt.Errorf("post to %s: %w", n.cfg.Type, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return n.vendor.check(resp, body)
}

// shortText is a receiver's answer as one short line.
func shortText(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// SendTest sends the sample message of send-test-notification.
func (n *Notifier) SendTest(ctx context.Context) error { return n.Send(ctx, Test(n.cfg.Language)) }

// Announce posts a notice (a promotion waiting for approval, a stage held) through the notifier's
// queue, within its rate like a report.
func (n *Notifier) Announce(ctx context.Context, nt notify.Notice) error {
	lines := append([]string{"### " + nt.Title}, nt.Lines...)
	return n.Send(ctx, message{Title: nt.Title, Lines: lines, Buttons: nt.Buttons})
}

// AnnounceStage posts a promotion's notice when the stage names this notifier among its
// notifiers. It returns at once, so that the promotion pass never waits for a robot: the notice
// goes through the queue (Announce), and a failure is logged.
func (n *Notifier) AnnounceStage(ctx context.Context, notifiers []string, _ *event.Mail, nt notify.Notice) {
	if !slices.Contains(notifiers, n.cfg.Name) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	go func() {
		if err := n.Announce(ctx, nt); err != nil {
			n.log.Warn("promotion notice not sent", "title", nt.Title, "err", err)
		}
	}()
}
