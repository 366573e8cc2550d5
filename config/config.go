// Package config loads imagehook's YAML configuration: strict decoding (unknown keys are errors that
// name the line), ${ENV} expansion, secrets read from ...File paths, defaults, and validation at load
// time with messages that name the hook and field at fault.
package config

// HookByID returns the hook with that id.
func (c *Config) HookByID(id string) (*Hook, bool) {
	for i := range c.Hooks {
		if c.Hooks[i].ID == id {
			return &c.Hooks[i], true
		}
	}
	return nil, false
}
