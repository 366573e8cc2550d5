package event

// Reasons of the notify step.
const (
	// ReasonNothingToSend: no notifier reports this event's outcome (none is named by its hook,
	// or each reports only other outcomes), so nothing was sent.
	ReasonNothingToSend Reason = "nothing to send"
)
