package event

// Reasons of the deploy step's refresh request (watch.refresh): the GitOps tool was not asked to
// look at the repository at once, and syncs at its next poll instead. The event does not fail
// for it.
const (
	// ReasonRefreshDenied: the cluster refused the request (HTTP 403): the service account lacks
	// patch on applications.argoproj.io, or on gitrepos/status in fleet.cattle.io.
	ReasonRefreshDenied Reason = "refresh denied"
	// ReasonRefreshFailed: the request failed otherwise (the application was gone, the API server
	// did not answer).
	ReasonRefreshFailed Reason = "refresh failed"
)
