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

// TestOrderLatest: the tag reconcile chooses under each order, as Fleet's latestTag chooses it
// (semver: the greatest version the range allows, no pre-release unless the range names one;
// alphabetical: the greatest or least in byte order), and never a step back from the current tag.
func TestOrderLatest(t *testing.T) {
	tags := []string{"1.2.0", "1.10.0", "1.9.0", "2.0.0-rc.1", "v1.11.0", "latest", "1.9"}
	for _, tt := range []struct {
		name, policy, cur string
		anyVersion        bool
		want              string
		forward           bool
	}{
		{"semver star skips pre-releases", "semver:*", "1.2.0", false, "v1.11.0", true},
		{"semver range", "semver:<1.10.0", "1.2.0", false, "1.9.0", true},
		{"a range with a pre-release", "semver:>= 2.0.0-0", "1.2.0", false, "2.0.0-rc.1", true},
		{"up to date", "semver:<1.10.0", "1.9.0", false, "", false},
		{"never back", "semver:<1.10.0", "1.10.0", false, "", false},
		{"not a version: nothing newer", "semver:*", "latest", false, "", false},
		{"not a version: any (markers)", "semver:*", "latest", true, "v1.11.0", true},
		{"highest", "alphabetical:highest", "1.2.0", false, "v1.11.0", true},
		{"lowest", "alphabetical:lowest", "1.9", false, "1.10.0", true},
		{"highest, at it", "alphabetical:highest", "v1.11.0", false, "v1.11.0", false},
		{"highest, past it", "alphabetical:highest", "zzz", false, "v1.11.0", false},
		{"no current", "alphabetical:lowest", "", false, "1.10.0", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			got, forward := OrderOf(tt.policy).Latest(p, tags, tt.cur, tt.anyVersion)
			if forward != tt.forward || forward && got != tt.want {
				t.Errorf("Latest = %q, %v; want %q, %v", got, forward, tt.want, tt.forward)
			}
		})
	}
	if _, err := Parse("alphabetical:asc"); err == nil {
		t.Error("alphabetical:asc accepted: the words are highest and lowest")
	}
}
