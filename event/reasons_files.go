package event

import "errors"

// Reasons of files that were not read (package manifests names each such file with one of these),
// and of the step that failed because a target could not be found while files that could hold it
// were not read.
const (
	// ReasonFilesNotRead: the target was not found, and files that could hold it were not read;
	// the step's Skipped names each, with its own reason.
	ReasonFilesNotRead Reason = "files not read"
	// ReasonFileTooBig: the file is larger than the per-file limit (limits.maxFileBytes).
	ReasonFileTooBig Reason = "file too big"
	// ReasonDocumentTooBig: a document of the file decodes to more YAML nodes than one document may.
	ReasonDocumentTooBig Reason = "document too big"
	// ReasonEventBudget: the event had already read or kept as much YAML as it may
	// (limits.maxEventBytes, limits.maxEventNodes).
	ReasonEventBudget Reason = "event budget used up"
	// ReasonNotYAML: the file does not decode as YAML (a template, say).
	ReasonNotYAML Reason = "not yaml"
	// ReasonFileUnreadable: opening or reading the file failed.
	ReasonFileUnreadable Reason = "file unreadable"
)

// ReasonOf returns the typed reason an error carries (an error in its chain with a
// Reason() Reason method), or "" when it carries none.
func ReasonOf(err error) Reason {
	var r interface{ Reason() Reason }
	if errors.As(err, &r) {
		return r.Reason()
	}
	return ""
}
