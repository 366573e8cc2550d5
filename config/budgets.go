package config

// Defaults of the budgets counted in events and deliveries, in one place.
const (
	// DefaultMaxPendingPerHook is limits.maxPendingPerHook's default.
	DefaultMaxPendingPerHook = 10_000
	// DefaultMaxPending is limits.maxPending's default.
	DefaultMaxPending = 50_000
	// DefaultForgeRate and DefaultForgeBurst are limits.forgeRate's and limits.forgeBurst's: a
	// forge sends a few deliveries per pull-request change, never hundreds a second.
	DefaultForgeRate  = 10
	DefaultForgeBurst = 50
)

func (l *Limits) setBudgetDefaults() {
	if l.MaxPendingPerHook == 0 {
		l.MaxPendingPerHook = DefaultMaxPendingPerHook
	}
	if l.MaxPending == 0 {
		l.MaxPending = DefaultMaxPending
	}
	if l.ForgeRate == 0 {
		l.ForgeRate, l.ForgeBurst = DefaultForgeRate, DefaultForgeBurst
	}
}

func validateBudgets(c *Config, errs *problems) {
	l := c.Limits
	if l.MaxPendingPerHook < 0 || l.MaxPending < 0 || l.ForgeRate < 0 || l.ForgeBurst < 0 {
		errs.add("limits: maxPendingPerHook, maxPending, forgeRate and forgeBurst must be positive")
	}
	for i, r := range c.Registries {
		if r.MaxTags < 0 || r.MaxTagBytes < 0 {
			errs.add("registries[%d] (%s): maxTags and maxTagBytes must be positive", i, r.Host)
		}
	}
}
