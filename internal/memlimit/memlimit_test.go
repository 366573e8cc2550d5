package memlimit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChoose(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string // relative to the fake cgroup root
		gomemlimit string
		want       Choice
	}{
		{name: "v2 limit", files: map[string]string{"memory.max": "268435456\n"},
			want: Choice{Limit: 241591910, Reason: FromCgroupV2}},
		{name: "v2 max", files: map[string]string{"memory.max": "max\n"}, want: Choice{Reason: NoLimit}},
		{name: "v1 limit", files: map[string]string{"memory/memory.limit_in_bytes": "536870912\n"},
			want: Choice{Limit: 483183820, Reason: FromCgroupV1}},
		{name: "v1 unlimited", files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"},
			want: Choice{Reason: NoLimit}},
		{name: "v2 before v1", files: map[string]string{"memory.max": "1000", "memory/memory.limit_in_bytes": "2000"},
			want: Choice{Limit: 900, Reason: FromCgroupV2}},
		{name: "GOMEMLIMIT wins", files: map[string]string{"memory.max": "268435456"}, gomemlimit: "100MiB",
			want: Choice{Reason: FromEnv}},
		{name: "no cgroup files", want: Choice{Reason: NoLimit}},
		{name: "garbage", files: map[string]string{"memory.max": "lots"}, want: Choice{Reason: Unreadable}},
		{name: "zero", files: map[string]string{"memory.max": "0"}, want: Choice{Reason: Unreadable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := Choose(root, tt.gomemlimit)
			if got.Limit != tt.want.Limit || got.Reason != tt.want.Reason {
				t.Errorf("Choose = %d, %q (%s); want %d, %q", got.Limit, got.Reason, got.Detail, tt.want.Limit, tt.want.Reason)
			}
			if got.Detail == "" {
				t.Error("no detail for the log line")
			}
		})
	}
}

// TestChooseUnreadable: a cgroup file that exists but cannot be read is said, not taken for no limit.
func TestChooseUnreadable(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "memory.max"), 0o755); err != nil { // a directory: read fails
		t.Fatal(err)
	}
	if got := Choose(root, ""); got.Reason != Unreadable || got.Limit != 0 {
		t.Errorf("Choose = %d, %q (%s); want 0, %q", got.Limit, got.Reason, got.Detail, Unreadable)
	}
}
