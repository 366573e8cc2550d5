package event

// Reasons of the git step that come from sharing a queue between replicas, or from a retry.
const (
	// ReasonLanded: the event's push already landed, in a commit of an earlier attempt or of the
	// queue's previous owner; it is not carried again.
	ReasonLanded Reason = "landed"
)
