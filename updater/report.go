package updater

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/notify"
)

// reporter is the last step, beside the finishers: it sends the reports of finished events without
// making a finisher wait (a robot or an SMTP server that never answers slows nothing but its own
// reports), records on each event what was actually sent, and then stores and releases the events:
// they are final in the journal, their ?wait= callers answer and the other replicas hear. Reports
// for the same robot that wait together — across commits and queues — go out as one message (the
// chat notifier coalesces what is pending for it).
type reporter struct {
	f        *flow
	notifier Notifier
}

// complete reports, stores and releases finished events; those with nothing to report at once.
func (r *reporter) complete(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	groups := r.groups(evs)
	if len(groups) == 0 {
		r.f.save(ctx, log, evs)
		r.release(ctx, log, evs)
		return
	}
	var quiet, reported []*event.Event
	for _, g := range groups {
		reported = append(reported, g...)
	}
	for _, ev := range evs {
		if !slices.Contains(reported, ev) {
			quiet = append(quiet, ev)
		}
	}
	r.f.save(ctx, log, quiet)
	r.release(ctx, log, quiet)
	r.f.q.goFlow(func() {
		r.send(ctx, log, groups)
		r.f.save(ctx, log, reported)
		r.release(ctx, log, reported)
	})
}

// groups sorts the events to report into one report per group of events carried by the same
// commit with the same mail recipients and outcome (a burst coalesced into one commit is one
// mail), one per event otherwise; the event journaled last comes first in its group, as the
// report is about the push the commit carries.
func (r *reporter) groups(evs []*event.Event) [][]*event.Event {
	if r.notifier == nil {
		return nil
	}
	byKey := map[string][]*event.Event{}
	var order []string
	for _, ev := range evs {
		// Nothing to report: an ignored push changed nothing, and a pull request closed unmerged
		// was somebody's decision, seen where it was made.
		if ev.Status == event.Ignored || ev.Status == event.Cancelled {
			continue
		}
		r.f.scrub(ev) // the notifiers see no secret either
		key := ev.ID
		if st, ok := ev.Step(event.StepGit); ok && st.Status == event.Succeeded && st.Commit != "" && ev.Status == event.Succeeded && len(ev.Targets) == 1 {
			route, _ := json.Marshal(ev.Mail)
			key = st.Commit + "\x00" + string(route)
		}
		if byKey[key] == nil {
			order = append(order, key)
		}
		byKey[key] = append(byKey[key], ev)
	}
	out := make([][]*event.Event, 0, len(order))
	for _, key := range order {
		group := byKey[key]
		sort.SliceStable(group, func(i, j int) bool { return group[i].Seq > group[j].Seq })
		out = append(out, group)
	}
	return out
}

// send reports every group at once and records each event's notify step. A failed notification
// never fails an update.
func (r *reporter) send(ctx context.Context, log *slog.Logger, groups [][]*event.Event) {
	var wg sync.WaitGroup
	for _, group := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := r.notifier.Report(ctx, group...)
			failed := false
			for _, s := range sent {
				if s.Err != nil {
					failed = true
					log.Warn("notification failed", "notifier", s.Notifier, "events", strings.Join(s.Events, ","), "err", s.Err)
				}
			}
			r.f.opts.Metrics.notify.WithLabelValues(map[bool]string{true: "failed", false: "sent"}[failed]).Inc()
			for _, ev := range group {
				ev.SetStep(r.notifyStep(ev.ID, sent))
			}
		}()
	}
	wg.Wait()
}

// notifyStep records what the notifiers sent about one event: who carried it, and the errors of
// those that failed.
func (r *reporter) notifyStep(id string, sent []notify.Sent) event.Step {
	st := event.Step{Name: event.StepNotify, Status: event.Succeeded, At: time.Now()}
	var by, errs []string
	for _, s := range sent {
		if !slices.Contains(s.Events, id) {
			continue
		}
		if s.Err != nil {
			errs = append(errs, r.f.opts.Redactor.String(s.Err.Error()))
			continue
		}
		by = append(by, s.Notifier)
	}
	if len(by) > 0 {
		st.Detail = "sent by " + strings.Join(by, ", ")
	}
	switch {
	case len(errs) > 0:
		st.Status, st.Error = event.Failed, strings.Join(errs, "\n")
	case len(by) == 0:
		st.Reason, st.Detail = event.ReasonNothingToSend, "no notifier reports this outcome of the event"
	}
	return st
}

// release answers the events' ?wait= callers and tells the other replicas they are done.
func (r *reporter) release(ctx context.Context, log *slog.Logger, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		r.f.opts.Metrics.events.WithLabelValues(ev.Hook, ev.Push.Source, string(ev.Status)).Inc()
		r.f.q.untrack(ev.ID)
		r.f.q.wake(ev.ID)
		ids = append(ids, ev.ID)
		log.Info("event done", "event", ev.ID, "hook", ev.Hook, "status", ev.Status)
	}
	if r.f.opts.Peers != nil {
		r.f.opts.Peers.Finished(ctx, ids)
	}
	r.f.tellProgress()
}
