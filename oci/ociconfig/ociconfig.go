// Package ociconfig is the type of the config file's registries: entries, owned by package oci
// (oci.Host is this type) and kept apart from it so that package config can decode it without
// importing oci's registry client.
package ociconfig

// Registry is how imagehook reaches one registry host.
type Registry struct {
	Host     string `yaml:"host"`
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// PasswordFile and CAFile are read into Password and CABundle at load.
	PasswordFile string `yaml:"passwordFile" secretfile:"Password"`
	CAFile       string `yaml:"caFile" secretfile:"CABundle"`
	// Insecure speaks plain HTTP (a lab registry); logged as a warning.
	Insecure bool `yaml:"insecure"`
	// CABundle is the content of CAFile.
	CABundle []byte `yaml:"-"`

	// MaxTags and MaxTagBytes cap one repository's tag list, all pages together (reconcile): past
	// either, the pass fails with reason "tag list too long" (0: oci.DefaultMaxTags, 100,000 tags,
	// and oci.DefaultMaxTagBytes, 8 MiB, applied by oci.New).
	MaxTags     int   `yaml:"maxTags"`
	MaxTagBytes int64 `yaml:"maxTagBytes"`
}
