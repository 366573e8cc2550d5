package event

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	big := strings.Repeat("<b>sync failed</b>\n日本 ", 1<<16)
	for _, tt := range []struct {
		name, in string
		whole    bool
	}{
		{"short", "synced", true},
		{"at the limit", strings.Repeat("x", MaxText), true},
		{"1 MiB with newlines and markup", big, false},
		{"no separator", strings.Repeat("x", 1<<20), false},
		{"invalid UTF-8", strings.Repeat("\xff", 1<<14), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Cut(tt.in)
			if tt.whole {
				if got != tt.in {
					t.Fatalf("changed a text within the limit: %q", got)
				}
				return
			}
			if len(got) > MaxText {
				t.Errorf("%d bytes, want at most %d", len(got), MaxText)
			}
			kept, mark, ok := strings.Cut(got, "… (cut, ")
			if !ok || !strings.HasPrefix(tt.in, kept) || !strings.HasSuffix(mark, " bytes)") {
				t.Fatalf("not a prefix with the mark: %q", got[max(0, len(got)-80):])
			}
			if want := strings.TrimSuffix(mark, " bytes)"); want != strconv.Itoa(len(tt.in)-len(kept)) {
				t.Errorf("mark says %s bytes, %d were left out", want, len(tt.in)-len(kept))
			}
			if utf8.ValidString(tt.in) && !utf8.ValidString(got) {
				t.Error("cut inside a rune")
			}
			if Cut(got) != got {
				t.Error("cutting again changed the text")
			}
		})
	}
}

// A token that straddles the limit is dropped whole, so that the redactor, which masks whole
// values only, never leaves half a secret behind.
func TestCutDropsStraddlingToken(t *testing.T) {
	secret := "ghp_" + strings.Repeat("s", 60)
	pad := strings.Repeat("a", MaxText-cutReserve-20)
	got := Cut(pad + " https://" + secret + "@git.example.com " + strings.Repeat("z", 1<<12))
	if strings.Contains(got, "ghp_") {
		t.Errorf("half a token kept: %q", got[len(pad)-10:])
	}
}

func TestSetStepCuts(t *testing.T) {
	var e Event
	e.SetStep(Step{Name: StepDeploy, Status: Failed, Error: strings.Repeat("e", 1<<20), Detail: strings.Repeat("d", 1<<20)})
	e.Error = strings.Repeat("x", 1<<20)
	e.Settle()
	st, _ := e.Step(StepDeploy)
	if len(st.Error) > MaxText || len(st.Detail) > MaxText || len(e.Error) > MaxText {
		t.Errorf("stored %d, %d and %d bytes", len(st.Error), len(st.Detail), len(e.Error))
	}
}
