package event

// Reason is a step's typed outcome cause, beside the Detail a person reads. Code branches on
// reasons, never on the wording of a detail. Each concern declares its reasons in its own file
// of this package (reasons_*.go), so that one list per concern stays in one place.
type Reason string

// Reasons of the git step's outcome that the rest of the flow reads.
const (
	// ReasonSuperseded: a later journaled push of the same target won; this event is carried by
	// (or replaced by) that one's commit.
	ReasonSuperseded Reason = "superseded"
	// ReasonUnchanged: the target already held the image; nothing to commit.
	ReasonUnchanged Reason = "unchanged"
	// ReasonJournalUnavailable: the journal could not be read or written, so the step waits and
	// retries instead of guessing.
	ReasonJournalUnavailable Reason = "journal unavailable"
)

// Reasons an event is not applied at all.
const (
	// ReasonDuplicate: the same digest for the same targets was already applied by another event.
	ReasonDuplicate Reason = "duplicate delivery"
	// ReasonOlderPush: by the registry's clock, the push is older than the one the target runs.
	ReasonOlderPush Reason = "older push"
)

// refusal reports whether r is admission refusing the push (a duplicate, an older push, a push
// superseded by one already applied): a step ignored for it makes the whole event ignored.
func (r Reason) refusal() bool {
	return r == ReasonDuplicate || r == ReasonOlderPush || r == ReasonSuperseded
}
