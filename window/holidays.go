package window

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed holidays_cn.txt
var cnData string

// Holidays is a calendar of public holidays and of the weekend days made working days in exchange
// (调休). Only the years it has data for are known; asking about another year is an error, so a gate
// built on it fails closed instead of treating a holiday as a working day.
type Holidays struct {
	name  string
	years map[int]bool
	days  map[civilDate]dayKind
	names map[civilDate]string
}

type dayKind int

const (
	ordinary dayKind = iota
	off
	work
)

// civilDate is a calendar day with no zone: holiday data names local days.
type civilDate struct {
	y int
	m time.Month
	d int
}

func dateOf(t time.Time) civilDate {
	y, m, d := t.Date()
	return civilDate{y, m, d}
}

func (c civilDate) String() string { return fmt.Sprintf("%04d-%02d-%02d", c.y, c.m, c.d) }

// CN is the calendar of the People's Republic of China shipped with imagehook (holidays_cn.txt names
// the notice each year comes from).
func CN() *Holidays {
	h, err := ParseHolidays(strings.NewReader(cnData), "cn")
	if err != nil {
		panic("window: shipped holiday data: " + err.Error()) // a test parses it
	}
	return h
}

// maxHolidayLines bounds a user's holiday file; a century of holidays is a few thousand lines.
const maxHolidayLines = 20000

// ParseHolidays reads a holiday file in the format of holidays_cn.txt: "year YYYY" marks a year as
// known, "off FROM[..TO] [name]" a holiday, "work DAY [name]" a weekend that is a working day;
// '#' starts a comment. name is used in errors. Every day must lie in a year declared before it.
func ParseHolidays(r io.Reader, name string) (*Holidays, error) {
	h := &Holidays{name: name, years: map[int]bool{}, days: map[civilDate]dayKind{}, names: map[civilDate]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	line := 0
	for sc.Scan() {
		line++
		if line > maxHolidayLines {
			return nil, fmt.Errorf("%s: more than %d lines", name, maxHolidayLines)
		}
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if err := h.parseLine(fields); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s line %d: %w", name, line+1, err)
	}
	if len(h.years) == 0 {
		return nil, fmt.Errorf("%s: no \"year\" line: the calendar knows no year", name)
	}
	return h, nil
}

func (h *Holidays) parseLine(f []string) error {
	label := strings.Join(f[min(2, len(f)):], " ")
	switch f[0] {
	case "year":
		if len(f) != 2 {
			return fmt.Errorf("want \"year YYYY\"")
		}
		y, err := strconv.Atoi(f[1])
		if err != nil || y < 1970 || y > 9999 {
			return fmt.Errorf("year %q: want a four-digit year", f[1])
		}
		h.years[y] = true
	case "off", "work":
		if len(f) < 2 {
			return fmt.Errorf("want %q and a date", f[0])
		}
		from, to, err := parseDayRange(f[1])
		if err != nil {
			return err
		}
		kind := off
		if f[0] == "work" {
			kind = work
			if from != to {
				return fmt.Errorf("%s: a working day is one day, not a range", f[1])
			}
		}
		if to.Sub(from) > 31*24*time.Hour {
			return fmt.Errorf("%s: a holiday longer than a month", f[1])
		}
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			c := dateOf(d)
			if !h.years[c.y] {
				return fmt.Errorf("%s: year %d has no \"year\" line before it", c, c.y)
			}
			if prev, dup := h.days[c]; dup && prev != kind {
				return fmt.Errorf("%s is both a holiday and a working day", c)
			}
			if kind == work && d.Weekday() != time.Saturday && d.Weekday() != time.Sunday {
				return fmt.Errorf("%s is a %s: only a weekend day can be made a working day", c, d.Weekday())
			}
			h.days[c] = kind
			h.names[c] = label
		}
	default:
		return fmt.Errorf("%q: want year, off or work", f[0])
	}
	return nil
}

func parseDayRange(s string) (time.Time, time.Time, error) {
	a, b, isRange := strings.Cut(s, "..")
	from, err := time.Parse(time.DateOnly, a)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD", a)
	}
	if !isRange {
		return from, from, nil
	}
	to, err := time.Parse(time.DateOnly, b)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD", b)
	}
	if to.Before(from) {
		return time.Time{}, time.Time{}, fmt.Errorf("%s: ends before it starts", s)
	}
	return from, to, nil
}

// Years lists the years the calendar knows, in order.
func (h *Holidays) Years() []int {
	var ys []int
	for y := range h.years {
		ys = append(ys, y)
	}
	slices.Sort(ys)
	return ys
}

// kind says what the local day of t is; ok is false when its year is not in the calendar.
func (h *Holidays) kind(c civilDate) (k dayKind, name string, ok bool) {
	if !h.years[c.y] {
		return ordinary, "", false
	}
	return h.days[c], h.names[c], true
}
