package event

// Reasons of pull-request write-back: what imagehook refused to trust, and why.
const (
	// ReasonForeignPullRequest: a pull request from another repository (a fork) has imagehook's
	// branch name; imagehook left it alone and uses its own, from the repository's branch.
	ReasonForeignPullRequest Reason = "foreign pull request"
	// ReasonForeignCommit: imagehook's branch ends in a commit imagehook did not push; the branch is
	// not rebuilt over it (nor auto-merged), and the pull request says why.
	ReasonForeignCommit Reason = "foreign commit"
	// ReasonMergedOtherContent: the merge commit does not hold the image imagehook proposed for a
	// target; nothing is applied to a cluster.
	ReasonMergedOtherContent Reason = "merged other content"
	// ReasonReopened: a pull request closed without merging was reopened; its events await the
	// merge again.
	ReasonReopened Reason = "reopened"
)
