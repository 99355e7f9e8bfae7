// Package units reads and writes the sizes and durations of paf-peer's
// settings as a user types them: 10KiB, 8MiB, 90m, 2h, 30d. Parsing takes
// bounds and its errors say what is allowed, so a command can show them as
// they are.
package units

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseSize reads a byte count from lo to hi: a whole number with an
// optional unit, B, KiB (or K, KB) or MiB (or M, MB), case-insensitive;
// units are powers of two. The error says what is allowed.
func ParseSize(s string, lo, hi int) (int, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	mult := map[string]int{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20}[unit]
	n, err := strconv.Atoi(num)
	if err != nil || mult == 0 || n < 0 || n > hi/mult || n*mult < lo {
		return 0, fmt.Errorf("want a size from %s to %s, e.g. 10KiB or 8MiB", SizeText(lo), SizeText(hi))
	}
	return n * mult, nil
}

// ParseDuration reads a duration from lo to hi as time.ParseDuration does
// ("90m", "2h30m"), or a whole number of days ("30d"). The error says what is
// allowed.
func ParseDuration(s string, lo, hi time.Duration) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
			if n > int(hi/(24*time.Hour))+1 {
				d = hi + 1 // out of bounds, without overflowing
			}
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("want a duration from %v to %v, e.g. 90m, 2h or 30d", lo, daysText(hi))
	}
	return d, nil
}

// SizeText is n bytes as ParseSize reads it, in the largest unit that
// divides it: 8MiB, 10KiB, 1000B.
func SizeText(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// DurationText is d as ParseDuration reads it and a user writes it: whole
// days as 30d, two hours or more as 2h, else minutes (60m).
func DurationText(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0 && d >= 2*time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// daysText is d in whole days when it is some, for the bounds in errors.
func daysText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
