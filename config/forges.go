package config

// CodeupRepo names a repository on Alibaba Cloud Codeup (云效) for its OpenAPI
// (writeBack.codeup). Both are optional: the organization id is the first segment of a
// codeup.aliyun.com URL's path, and the repository is then named by its full path.
type CodeupRepo struct {
	// OrganizationID is the Yunxiao organization id (组织 ID).
	OrganizationID string `yaml:"organizationId"`
	// RepositoryID is the repository's numeric id, or its full path ("org/group/apps").
	RepositoryID string `yaml:"repositoryId"`
}

// Refreshes reports whether imagehook asks the GitOps tool to look at the repository at once
// after each push it follows (watch.refresh; default true).
func (w *Watch) Refreshes() bool { return w != nil && (w.Refresh == nil || *w.Refresh) }

// validateForge checks the keys only one provider reads.
func (w WriteBack) validateForge(errs *problems, where string) {
	if (w.Codeup.OrganizationID != "" || w.Codeup.RepositoryID != "") && w.Provider != "codeup" {
		errs.add("%s.codeup: only read by provider codeup (this repository's is %q)", where, w.Provider)
	}
}
