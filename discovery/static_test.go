package discovery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseSeeds(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []string
		wantErr string // substring of the error; "" means success
	}{
		"empty":               {in: "", want: nil},
		"only spaces":         {in: "  ", want: nil},
		"one":                 {in: "192.168.1.20:7946", want: []string{"192.168.1.20:7946"}},
		"several with spaces": {in: "a:1 , b.example:2,c-d:65535", want: []string{"a:1", "b.example:2", "c-d:65535"}},
		"ipv6 bracketed":      {in: "[::1]:7946", want: []string{"[::1]:7946"}},
		"ipv6 with zone":      {in: "[fe80::1%eth0]:7946", want: []string{"[fe80::1%eth0]:7946"}},
		"trailing comma":      {in: "a:1,", want: []string{"a:1"}},
		"duplicates once":     {in: "a:1,a:1", want: []string{"a:1"}},
		"no port":             {in: "host", wantErr: `"host": missing port`},
		"empty host":          {in: ":7946", wantErr: `":7946": empty host`},
		"empty port":          {in: "host:", wantErr: `"host:": empty port`},
		"port zero":           {in: "host:0", wantErr: `"host:0": port 0 out of range 1-65535`},
		"port too big":        {in: "host:70000", wantErr: `"host:70000": port 70000 out of range`},
		"port huge":           {in: "host:99999999999999999999999", wantErr: "out of range"},
		"port not a number":   {in: "host:abc", wantErr: `port "abc" is not a number`},
		"port signed":         {in: "host:+80", wantErr: "is not a number"},
		"bare ipv6":           {in: "::1:7946", wantErr: "too many colons"},
		"brackets not ip":     {in: "[foo]:1", wantErr: "not an IP address"},
		"space in zone":       {in: "[fe80::1%a b]:1", wantErr: "invalid character ' '"},
		"space in host":       {in: "my host:1", wantErr: "invalid character"},
		"bad one among good":  {in: "a:1, foo ,b:2", wantErr: `bad seed "foo"`},
		"url":                 {in: "http://a:1", wantErr: `"http://a:1"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseSeeds(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseSeeds(%q) = %q, want error containing %q", tc.in, got, tc.wantErr)
				}
				msg := err.Error()
				if !strings.Contains(msg, tc.wantErr) || !errors.Is(err, ErrBadSeed) ||
					!strings.HasPrefix(msg, "discovery: bad seed ") ||
					!strings.HasSuffix(msg, "want host:port, e.g. 192.168.1.20:7946") ||
					strings.Contains(msg, "\n") {
					t.Fatalf("ParseSeeds(%q) error = %q, want one line containing %q", tc.in, msg, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSeeds(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ParseSeeds(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestStaticCandidates(t *testing.T) {
	got, err := Static{"a:1", "[::1]:2"}.Candidates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Candidate{{Addr: "a:1", Source: SourceStatic}, {Addr: "[::1]:2", Source: SourceStatic}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (Static{"a:1"}).Candidates(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: err = %v, want context.Canceled", err)
	}
}
