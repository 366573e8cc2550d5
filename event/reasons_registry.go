package event

// Reasons of asking a registry (verify, reconcile): what imagehook refused to ask or to read.
const (
	// ReasonNotConfiguredRegistry: the image names a registry host that neither registries: lists
	// nor a hook names as its registryHost; nothing is asked of it.
	ReasonNotConfiguredRegistry Reason = "not a configured registry"
	// ReasonTagListTooLong: a repository's tag list is longer (in tags or bytes) than
	// registries[].maxTags or registries[].maxTagBytes allow; the pass reads no further.
	ReasonTagListTooLong Reason = "tag list too long"
)
