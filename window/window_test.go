package window

import (
	"strings"
	"testing"
	"time"
)

func mustCompile(t *testing.T, s Spec) *Window {
	t.Helper()
	w, err := Compile(s)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return w
}

func TestAt(t *testing.T) {
	cn := CN()
	office := Spec{Timezone: "Asia/Shanghai", Allow: []string{"Mon-Fri 10:00-17:00"}, Holidays: cn}
	night := Spec{Timezone: "Europe/Berlin", Allow: []string{"Sat,Sun 22:00-02:00"}}
	freeze := Spec{Timezone: "Asia/Shanghai", Deny: []string{"2026-12-31T18:00/2027-01-04T09:00"}}
	both := Spec{Timezone: "Asia/Shanghai", Allow: []string{"Mon-Fri 10:00-17:00"}, Deny: freeze.Deny, Holidays: cn}
	tests := []struct {
		name   string
		spec   Spec
		at     string // RFC 3339
		want   Reason
		next   string // RFC 3339 of the next opening, "" for none
		detail string // a part of the detail
	}{
		{"weekday inside", office, "2026-12-01T10:30:00+08:00", Open, "", ""},
		{"weekday before", office, "2026-12-01T09:59:59+08:00", Outside, "2026-12-01T10:00:00+08:00", "Mon-Fri 10:00-17:00"},
		{"end is exclusive", office, "2026-12-01T17:00:00+08:00", Outside, "2026-12-02T10:00:00+08:00", "opens Wed 2026-12-02 10:00 CST"},
		{"other zone's clock", office, "2026-12-01T02:30:00Z", Open, "", ""}, // 10:30 in Shanghai
		{"friday evening to monday", office, "2026-12-04T18:00:00+08:00", Outside, "2026-12-07T10:00:00+08:00", ""},
		{"national day holiday", office, "2026-10-02T11:00:00+08:00", Holiday, "2026-10-08T10:00:00+08:00", "国庆节"},
		{"adjusted working sunday", office, "2026-09-20T11:00:00+08:00", Open, "", ""},
		{"adjusted working saturday", office, "2026-10-10T16:59:00+08:00", Open, "", ""},
		{"ordinary saturday", office, "2026-10-17T11:00:00+08:00", Outside, "2026-10-19T10:00:00+08:00", ""},
		{"spring festival", office, "2026-02-16T11:00:00+08:00", Holiday, "2026-02-24T10:00:00+08:00", "春节"},
		{"saturday before spring festival is worked", office, "2026-02-14T10:00:00+08:00", Open, "", ""},
		{"no calendar for 2028", office, "2028-03-01T11:00:00+08:00", NoCalendar, "", "no holiday calendar for 2028"},
		{"end of the last known year", office, "2026-12-31T18:00:00+08:00", Outside, "", "no holiday calendar for 2027"},
		{"across midnight, evening", night, "2026-12-05T23:00:00+01:00", Open, "", ""},
		{"across midnight, after", night, "2026-12-06T01:59:00+01:00", Open, "", ""},
		{"across midnight, monday morning", night, "2026-12-07T01:00:00+01:00", Open, "", ""},
		{"across midnight, closed", night, "2026-12-07T02:00:00+01:00", Outside, "2026-12-12T22:00:00+01:00", ""},
		{"berlin dst change keeps local time", night, "2027-03-27T21:59:00+01:00", Outside, "2027-03-27T22:00:00+01:00", ""},
		{"freeze", freeze, "2027-01-01T12:00:00+08:00", Freeze, "2027-01-04T09:00:00+08:00", "change freeze 2026-12-31T18:00/2027-01-04T09:00 (Asia/Shanghai)"},
		{"freeze end is open", freeze, "2027-01-04T09:00:00+08:00", Open, "", ""},
		{"before freeze", freeze, "2026-12-31T17:59:00+08:00", Open, "", ""},
		// 17:00 ends the window, the freeze starts at 18:00 and runs into a year without a calendar.
		{"freeze and calendar", both, "2026-12-31T17:00:00+08:00", Outside, "", "no holiday calendar for 2027"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			v := mustCompile(t, tt.spec).At(at)
			if v.Reason != tt.want {
				t.Fatalf("reason %q (%s), want %q", v.Reason, v.Detail, tt.want)
			}
			if v.IsOpen() && v.Detail != "" {
				t.Errorf("open with detail %q", v.Detail)
			}
			var next string
			if !v.Next.IsZero() {
				next = v.Next.Format(time.RFC3339)
			}
			if tt.next != "" {
				want, _ := time.Parse(time.RFC3339, tt.next)
				if !v.Next.Equal(want) {
					t.Errorf("next %s, want %s (%s)", next, tt.next, v.Detail)
				}
			}
			if !strings.Contains(v.Detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", v.Detail, tt.detail)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"zone", Spec{Timezone: "Mars/Olympus"}, `timezone "Mars/Olympus"`},
		{"day", Spec{Allow: []string{"Mon-Fry 10:00-17:00"}}, `day "Fry"`},
		{"clock", Spec{Allow: []string{"Mon 10:00-17:60"}}, `time "17:60"`},
		{"24 as start", Spec{Allow: []string{"Mon 24:00-02:00"}}, `time "24:00"`},
		{"empty span", Spec{Allow: []string{"Mon 10:00-10:00"}}, "starts where it ends"},
		{"words", Spec{Allow: []string{"weekdays from 10 to 5"}}, `allow[0]`},
		{"interval", Spec{Deny: []string{"2026-12-31T18:00"}}, "want FROM/TO"},
		{"backwards", Spec{Deny: []string{"2027-01-04T09:00/2026-12-31T18:00"}}, "ends at or before"},
		{"instant", Spec{Deny: []string{"tomorrow/2026-12-31T18:00"}}, `"tomorrow"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestShippedCalendar(t *testing.T) {
	cn := CN()
	if got := cn.Years(); len(got) < 2 || got[len(got)-1] != 2026 {
		t.Errorf("years %v, want through 2026", got)
	}
	// Each published year has 7 festivals; counting off-days guards against a typo in a range.
	offDays := map[int]int{}
	for c, k := range cn.days {
		if k == off {
			offDays[c.y]++
		}
	}
	if offDays[2025] != 28 || offDays[2026] != 33 {
		t.Errorf("off days %v, want 2025: 28 and 2026: 33 as the notices add up", offDays)
	}
}

func TestParseHolidaysRefuses(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no year", "off 2026-01-01", "year 2026 has no"},
		{"weekday worked", "year 2026\nwork 2026-01-05", "only a weekend day"},
		{"both", "year 2026\noff 2026-01-03\nwork 2026-01-03", "both a holiday and a working day"},
		{"range worked", "year 2026\nwork 2026-01-03..2026-01-04", "one day"},
		{"long", "year 2026\noff 2026-01-01..2026-03-01", "longer than a month"},
		{"word", "year 2026\nfree 2026-01-01", `"free"`},
		{"empty", "# nothing\n", "knows no year"},
		{"bad date", "year 2026\noff 2026-13-01", "want YYYY-MM-DD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHolidays(strings.NewReader(tt.in), "test.txt")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "test.txt") {
				t.Fatalf("error %v, want one naming test.txt and containing %q", err, tt.want)
			}
		})
	}
}

func FuzzCompile(f *testing.F) {
	f.Add("Mon-Fri 10:00-17:00", "2026-12-31T18:00/2027-01-04T09:00", "year 2026\noff 2026-10-01..2026-10-07\nwork 2026-10-10", int64(1780000000))
	f.Add("Sat,Sun 22:00-02:00", "2026-12-31/2027-01-04", "", int64(0))
	f.Fuzz(func(t *testing.T, allow, deny, holidays string, unix int64) {
		spec := Spec{Timezone: "Asia/Shanghai", Allow: []string{allow}, Deny: []string{deny}}
		if holidays != "" {
			h, err := ParseHolidays(strings.NewReader(holidays), "fuzz")
			if err != nil {
				return
			}
			spec.Holidays = h
		}
		w, err := Compile(spec)
		if err != nil {
			return
		}
		at := time.Unix(unix%(1<<34), 0)
		v := w.At(at)
		if v.IsOpen() != (v.Reason == Open) || (!v.IsOpen() && v.Detail == "") {
			t.Fatalf("verdict %+v", v)
		}
		if !v.Next.IsZero() && (!v.Next.After(at) || !w.At(v.Next).IsOpen()) {
			t.Fatalf("next %v after %v is not an opening", v.Next, at)
		}
	})
}
