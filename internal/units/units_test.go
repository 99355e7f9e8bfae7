package units

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    int
		wantErr string
	}{
		"bytes":        {in: "2048", want: 2048},
		"KiB":          {in: "10KiB", want: 10 << 10},
		"k lower":      {in: "4k", want: 4 << 10},
		"MB":           {in: "8MB", want: 8 << 20},
		"at the top":   {in: "16MiB", want: 16 << 20},
		"below":        {in: "1023", wantErr: "from 1KiB to 16MiB"},
		"above":        {in: "17MiB", wantErr: "from 1KiB to 16MiB"},
		"GiB":          {in: "1GiB", wantErr: "e.g. 10KiB or 8MiB"},
		"not a number": {in: "big", wantErr: "e.g. 10KiB"},
		"overflows":    {in: "99999999999999999999MiB", wantErr: "from 1KiB"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseSize(tc.in, 1<<10, 16<<20)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSize(%q) = %d, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	tests := map[string]struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		"minutes":      {in: "90m", want: 90 * time.Minute},
		"mixed":        {in: "2h30m", want: 150 * time.Minute},
		"days":         {in: "30d", want: 30 * day},
		"too short":    {in: "30s", wantErr: "from 1m0s to 30d"},
		"too long":     {in: "31d", wantErr: "from 1m0s to 30d"},
		"huge days":    {in: "99999999999999d", wantErr: "to 30d"},
		"negative":     {in: "-1h", wantErr: "e.g. 90m, 2h or 30d"},
		"not duration": {in: "a month", wantErr: "e.g. 90m"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseDuration(tc.in, time.Minute, 30*day)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// The texts read back as what they describe.
func TestTexts(t *testing.T) {
	sizes := map[int]string{8 << 20: "8MiB", 10 << 10: "10KiB", 1000: "1000B"}
	for n, want := range sizes {
		if got := SizeText(n); got != want {
			t.Errorf("SizeText(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseSize(SizeText(n), 1, 1<<30); err != nil || back != n {
			t.Errorf("ParseSize(SizeText(%d)) = %d, %v", n, back, err)
		}
	}
	durs := map[time.Duration]string{30 * 24 * time.Hour: "30d", 2 * time.Hour: "2h", time.Hour: "60m", 90 * time.Minute: "90m"}
	for d, want := range durs {
		if got := DurationText(d); got != want {
			t.Errorf("DurationText(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(DurationText(d), time.Minute, 365*24*time.Hour); err != nil || back != d {
			t.Errorf("ParseDuration(DurationText(%v)) = %v, %v", d, back, err)
		}
	}
}
