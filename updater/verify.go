package updater

import (
	"context"
	"errors"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/oci"
)

// verifyOutcome is what the registry said of a push.
type verifyOutcome int

const (
	// verified: the registry has the tag; its digest is the one written.
	verifyOK verifyOutcome = iota
	// verifyFailed: the registry said no (no such tag, another digest, refused credentials, no
	// valid signature): final.
	verifyFailed
	// verifyUnreachable: the registry did not answer; the event is asked again later.
	verifyUnreachable
)

// maxVerifyPerHost bounds the verifications in flight with one registry host.
const maxVerifyPerHost = 4

// verified reports whether the event's push was verified by its registry in an earlier pass.
func verified(ev *event.Event) bool {
	st, ok := ev.Step(event.StepVerify)
	return ok && st.Status == event.Succeeded
}

// verify asks the registry about an event's push beside the queue, so that a registry that is slow
// to answer never holds up the repository's other events: verified, the event goes back to the
// front of its queue (with the registry's digest); refused, it goes to the finisher; unanswered,
// it is asked again after the git step's backoff.
func (w *worker) verify(ev *event.Event) {
	outcome := w.f.askRegistry(w.stop, ev)
	if w.stop.Err() != nil {
		return // still queued in the journal: the next start verifies it again
	}
	switch outcome {
	case verifyOK:
		w.f.save(w.ctx, w.log, []*event.Event{ev})
		w.f.q.putBack(w.key, []string{ev.ID})
	case verifyFailed:
		w.log.Warn("push not verified by its registry", "event", ev.ID, "err", ev.Error)
		w.f.q.handOver(w.key, []*event.Event{ev})
	case verifyUnreachable:
		// Accepted means applied: a registry that cannot be reached now is asked again later, as
		// a git server is.
		ev.Attempts++
		w.requeue([]*event.Event{ev}, "registry unreachable")
	}
}

// askRegistry verifies the push within VerifyTimeout, holding one of the registry host's slots.
func (f *flow) askRegistry(ctx context.Context, ev *event.Event) verifyOutcome {
	release := f.verifySlot(ev.Push.Image)
	defer release()
	if t := f.opts.VerifyTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	return f.verifyPush(ctx, ev)
}

// verifySlot waits for a free verification slot with the image's registry host and returns its
// release.
func (f *flow) verifySlot(image string) func() {
	var host string
	if ref, err := imageref.Parse(image); err == nil {
		host = ref.Host()
	}
	f.verifyMu.Lock()
	slots, ok := f.verifying[host]
	if !ok {
		slots = make(chan struct{}, maxVerifyPerHost)
		f.verifying[host] = slots
	}
	f.verifyMu.Unlock()
	slots <- struct{}{}
	return func() { <-slots }
}

// verifyPush resolves the pushed tag in its registry before anything is written: a tag the
// registry does not have, a digest that differs, refused credentials, or (for signed hooks) no
// valid signature of that digest fail the event; otherwise the registry's digest is the one
// written and recorded. A registry that does not answer leaves the event to be tried again.
func (f *flow) verifyPush(ctx context.Context, ev *event.Event) verifyOutcome {
	st := event.Step{Name: event.StepVerify, Status: event.Succeeded, At: time.Now()}
	var digest string
	// What the registry said is final; only a failure to reach it is worth another try.
	final := func(err error) bool {
		return errors.Is(err, oci.ErrNoTag) || errors.Is(err, oci.ErrDigestMismatch) || errors.Is(err, oci.ErrAuth) || errors.Is(err, oci.ErrUnsigned) ||
			errors.Is(err, oci.ErrNotConfigured)
	}
	err := errors.New("verify: no registry client is configured")
	if f.opts.Resolver != nil {
		digest, err = f.opts.Resolver.Resolve(ctx, ev.Push.Image, ev.Push.Digest)
	}
	if err == nil && ev.Signed {
		err = errors.New("verify: no signature checker is configured")
		if f.opts.Signatures != nil {
			err = f.opts.Signatures.Check(ctx, ev.Hook, ev.Push.Image, digest)
		}
	}
	configured := f.opts.Resolver != nil && (!ev.Signed || f.opts.Signatures != nil)
	if err != nil && configured && !final(err) {
		st.Status, st.Error = event.Queued, err.Error()
		ev.SetStep(st)
		return verifyUnreachable
	}
	if err != nil {
		st.Status, st.Error, st.Reason = event.Failed, err.Error(), event.ReasonOf(err)
		ev.SetStep(st)
		ev.Error = "verify: " + err.Error()
		return verifyFailed
	}
	ev.Push.Digest = digest
	st.Detail = "registry digest " + digest
	if ev.Signed {
		st.Detail += ", cosign signature verified"
	}
	ev.SetStep(st)
	return verifyOK
}
