// Package window decides when a change may be made: weekly allow windows ("Mon-Fri 10:00-17:00"),
// freezes given as intervals, and public holidays with the weekend days that are worked in exchange
// (调休). Promotion gates ask it whether now is inside; it answers with a typed reason, a sentence for
// people and the next time it opens.
package window

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reason says why a window is shut; the empty reason means open.
type Reason string

// Reasons a window is shut.
const (
	Open       Reason = ""
	Outside    Reason = "outside window"
	Freeze     Reason = "freeze"
	Holiday    Reason = "holiday"
	NoCalendar Reason = "no holiday calendar"
)

// Spec is a window as config writes it. Times without an offset are local to Timezone.
type Spec struct {
	Timezone string   // IANA name; "" is UTC
	Allow    []string // "[DAYS ]HH:MM-HH:MM", DAYS like "Mon-Fri" or "Sat,Sun"; none: always
	Deny     []string // "FROM/TO", each "YYYY-MM-DD[THH:MM[:SS]][offset]"
	Holidays *Holidays
}

// Window is a compiled Spec.
type Window struct {
	loc      *time.Location
	allow    []span
	deny     []interval
	holidays *Holidays
}

// span is a weekly window: on each day in days, from start to end minutes after midnight; an end
// before the start runs into the next day.
type span struct {
	days       [7]bool
	start, end int
	text       string
}

type interval struct {
	from, to time.Time
	text     string
}

// Verdict is the answer for one instant.
type Verdict struct {
	Reason Reason
	Detail string    // for people: what shuts it and when it opens
	Next   time.Time // when it opens next, zero when not within a year or never
}

// IsOpen reports whether the window is open.
func (v Verdict) IsOpen() bool { return v.Reason == Open }

// Compile checks a spec; errors name the entry at fault.
func Compile(s Spec) (*Window, error) {
	loc := time.UTC
	if s.Timezone != "" {
		l, err := time.LoadLocation(s.Timezone)
		if err != nil {
			return nil, fmt.Errorf("timezone %q: %w", s.Timezone, err)
		}
		loc = l
	}
	w := &Window{loc: loc, holidays: s.Holidays}
	for i, a := range s.Allow {
		sp, err := parseSpan(a)
		if err != nil {
			return nil, fmt.Errorf("allow[%d] %q: %w", i, a, err)
		}
		w.allow = append(w.allow, sp)
	}
	for i, d := range s.Deny {
		iv, err := parseInterval(d, loc)
		if err != nil {
			return nil, fmt.Errorf("deny[%d] %q: %w", i, d, err)
		}
		w.deny = append(w.deny, iv)
	}
	return w, nil
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func parseSpan(s string) (span, error) {
	sp := span{text: strings.Join(strings.Fields(s), " ")}
	f := strings.Fields(s)
	switch len(f) {
	case 1:
		for d := range sp.days {
			sp.days[d] = true
		}
	case 2:
		if err := parseDays(f[0], &sp.days); err != nil {
			return span{}, err
		}
	default:
		return span{}, fmt.Errorf("want \"[DAYS ]HH:MM-HH:MM\", like \"Mon-Fri 10:00-17:00\"")
	}
	a, b, ok := strings.Cut(f[len(f)-1], "-")
	if !ok {
		return span{}, fmt.Errorf("%q: want HH:MM-HH:MM", f[len(f)-1])
	}
	var err error
	if sp.start, err = parseClock(a, false); err != nil {
		return span{}, err
	}
	if sp.end, err = parseClock(b, true); err != nil {
		return span{}, err
	}
	if sp.start == sp.end {
		return span{}, fmt.Errorf("%s-%s: starts where it ends; write 00:00-24:00 for a whole day", a, b)
	}
	return sp, nil
}

func parseDays(s string, days *[7]bool) error {
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(item, "-")
		from, ok := dayNames[strings.ToLower(a)]
		if !ok {
			return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", a)
		}
		to := from
		if isRange {
			if to, ok = dayNames[strings.ToLower(b)]; !ok {
				return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", b)
			}
		}
		for d := from; ; d = (d + 1) % 7 { // Fri-Mon wraps over the weekend
			days[d] = true
			if d == to {
				break
			}
		}
	}
	return nil
}

func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) != 2 || len(m) != 2 || mm > 59 || hh > 24 ||
		(hh == 24 && (mm != 0 || !end)) {
		return 0, fmt.Errorf("time %q: want HH:MM (00:00 to 23:59; 24:00 only as an end)", s)
	}
	return hh*60 + mm, nil
}

var instantLayouts = []string{
	time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02T15:04:05", "2006-01-02T15:04", time.DateOnly,
}

func parseInterval(s string, loc *time.Location) (interval, error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return interval{}, fmt.Errorf("want FROM/TO, like 2026-12-31T18:00/2027-01-04T09:00")
	}
	from, err := parseInstant(a, loc)
	if err != nil {
		return interval{}, err
	}
	to, err := parseInstant(b, loc)
	if err != nil {
		return interval{}, err
	}
	if !to.After(from) {
		return interval{}, fmt.Errorf("ends at or before it starts")
	}
	return interval{from: from, to: to, text: s}, nil
}

func parseInstant(s string, loc *time.Location) (time.Time, error) {
	for _, l := range instantLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want YYYY-MM-DDTHH:MM, with seconds or an offset if needed", s)
}

// horizon bounds the search for the next opening: a window shut for a year is reported as such.
const horizon = 400 * 24 * time.Hour

// At says whether the window is open at t and, when it is shut, why and when it opens.
func (w *Window) At(t time.Time) Verdict {
	v := w.check(t)
	if v.IsOpen() || v.Reason == NoCalendar {
		return v
	}
	next, stop := w.next(t)
	switch {
	case !next.IsZero():
		v.Next = next
		v.Detail += "; opens " + next.Format("Mon 2006-01-02 15:04 MST")
	case stop != "":
		v.Detail += "; then " + stop
	default:
		v.Detail += "; does not open within a year"
	}
	return v
}

// check is At without the search for the next opening.
func (w *Window) check(t time.Time) Verdict {
	t = t.In(w.loc)
	for _, iv := range w.deny {
		if !t.Before(iv.from) && t.Before(iv.to) {
			return Verdict{Reason: Freeze, Detail: "change freeze " + iv.text + " (" + w.loc.String() + ")"}
		}
	}
	if w.holidays != nil {
		c := dateOf(t)
		kind, name, ok := w.holidays.kind(c)
		if !ok {
			return Verdict{Reason: NoCalendar, Detail: fmt.Sprintf("no holiday calendar for %d (%s)", c.y, w.holidays.name)}
		}
		if kind == off {
			return Verdict{Reason: Holiday, Detail: strings.TrimSpace("public holiday " + c.String() + " " + name)}
		}
	}
	if len(w.allow) == 0 {
		return Verdict{}
	}
	today := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, w.loc)
	for _, day := range []time.Time{today, today.AddDate(0, 0, -1)} {
		for _, sp := range w.allow {
			if !w.dayMatches(day, sp) {
				continue
			}
			from, to := sp.bounds(day, w.loc)
			if !t.Before(from) && t.Before(to) {
				return Verdict{}
			}
		}
	}
	texts := make([]string, len(w.allow))
	for i, sp := range w.allow {
		texts[i] = sp.text
	}
	return Verdict{Reason: Outside, Detail: "outside the allowed windows (" + strings.Join(texts, ", ") + ", " + w.loc.String() + ")"}
}

// dayMatches reports whether a span starting on day applies. With a holiday calendar, a holiday starts
// no window, and a weekend day made a working day starts every window that covers all of Mon–Fri.
func (w *Window) dayMatches(day time.Time, sp span) bool {
	if w.holidays == nil {
		return sp.days[day.Weekday()]
	}
	kind, _, ok := w.holidays.kind(dateOf(day))
	switch {
	case !ok || kind == off:
		return false
	case kind == work:
		return sp.days[day.Weekday()] || sp.coversWeekdays()
	}
	return sp.days[day.Weekday()]
}

func (sp span) coversWeekdays() bool {
	for d := time.Monday; d <= time.Friday; d++ {
		if !sp.days[d] {
			return false
		}
	}
	return true
}

func (sp span) bounds(day time.Time, loc *time.Location) (time.Time, time.Time) {
	from := time.Date(day.Year(), day.Month(), day.Day(), 0, sp.start, 0, 0, loc)
	end := sp.end
	if sp.end < sp.start {
		end += 24 * 60
	}
	return from, time.Date(day.Year(), day.Month(), day.Day(), 0, end, 0, 0, loc)
}

// next finds the first instant after t at which the window is open. The window can only open at a
// midnight (a holiday ends), at a span's start or at a freeze's end, so those are the candidates.
// When the search runs into a year the holiday calendar lacks, it stops and says so.
func (w *Window) next(t time.Time) (time.Time, string) {
	t = t.In(w.loc)
	limit := t.Add(horizon)
	var cands []time.Time
	for _, iv := range w.deny {
		if iv.to.After(t) && iv.to.Before(limit) {
			cands = append(cands, iv.to)
		}
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, w.loc)
	for ; day.Before(limit); day = day.AddDate(0, 0, 1) {
		cands = append(cands, day)
		for _, sp := range w.allow {
			from, _ := sp.bounds(day, w.loc)
			cands = append(cands, from)
		}
	}
	slices.SortFunc(cands, func(a, b time.Time) int { return a.Compare(b) })
	for _, c := range cands {
		if !c.After(t) {
			continue
		}
		switch v := w.check(c); v.Reason {
		case Open:
			return c, ""
		case NoCalendar:
			return time.Time{}, v.Detail // fails closed from here on
		}
	}
	return time.Time{}, ""
}
