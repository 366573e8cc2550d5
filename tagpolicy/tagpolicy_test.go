package tagpolicy

import "testing"

func TestPolicy(t *testing.T) {
	tests := []struct {
		policy string
		tag    string
		ok     bool
	}{
		{"", "anything", true},
		{"semver:>=1.0.0", "1.2.3", true},
		{"semver:>=1.0.0", "v1.2.3", true},
		{"semver:>=1.0.0", "0.9.0", false},
		{"semver:>=1.0.0", "latest", false},
		{"semver:~1.2", "1.2.9", true},
		{"semver:~1.2", "1.3.0", false},
		{"regex:^release-[0-9]+$", "release-12", true},
		{"regex:^release-[0-9]+$", "dev-12", false},
		{"glob:v1.*", "v1.4", true},
		{"glob:v1.*", "v2.0", false},
	}
	for _, tt := range tests {
		p, err := Parse(tt.policy)
		if err != nil {
			t.Fatalf("%s: %v", tt.policy, err)
		}
		if ok, why := p(tt.tag); ok != tt.ok || !ok && why == "" {
			t.Errorf("%s on %s = %v %q, want %v", tt.policy, tt.tag, ok, why, tt.ok)
		}
	}
	for _, bad := range []string{"semver:>>1", "regex:(", "glob:[", "latest", "calver:2024"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
