package workload

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"deployment/web", "deployment/web", ""},
		{"Deployment/web", "deployment/web", ""},
		{"replicationcontroller/old-app", "replicationcontroller/old-app", ""},
		{"cronjob/nightly", "cronjob/nightly", ""},
		{"service/web", "", "not a workload kind"},
		{"deployment", "", "want kind/name"},
		{"deployment/a/b", "", "want kind/name"},
		{"/web", "", "want kind/name"},
	} {
		got, err := Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("%s: %v %v, want %s", tt.in, got, err, tt.want)
		}
	}
	if k, _ := Lookup("ReplicationController"); !k.Apply || k.Resource != "replicationcontrollers" || k.Group != "" {
		t.Errorf("ReplicationController: %+v", k)
	}
}
