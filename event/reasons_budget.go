package event

// Reasons a request is refused by a budget (the listener's answers and logs).
const (
	// ReasonRateLimited: the hook's, the forge's or the global rate budget is spent; each push a
	// request carries counts.
	ReasonRateLimited Reason = "rate limited"
	// ReasonJournalFull: the events waiting in the journal, for the hook or in all, are at their
	// budget (limits.maxPendingPerHook, limits.maxPending); nothing was written.
	ReasonJournalFull Reason = "journal full"
)
