package discovery

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// fakeSource returns fixed results and counts its calls.
type fakeSource struct {
	cands []Candidate
	err   error
	calls int
}

func (f *fakeSource) Candidates(context.Context) ([]Candidate, error) {
	f.calls++
	return f.cands, f.err
}

func TestMulti(t *testing.T) {
	errB := errors.New("b broke")
	errD := errors.New("d broke")
	tests := map[string]struct {
		sources  []Source
		want     []Candidate
		wantErrs []error
	}{
		"none": {},
		"dedup keeps first and order": {
			sources: []Source{
				&fakeSource{cands: []Candidate{{ID: "p1", Addr: "127.0.0.1:1", Source: SourceLocal}, {ID: "p2", Addr: "127.0.0.1:2", Source: SourceLocal}}},
				Static{"127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:3"},
			},
			want: []Candidate{
				{ID: "p1", Addr: "127.0.0.1:1", Source: SourceLocal},
				{ID: "p2", Addr: "127.0.0.1:2", Source: SourceLocal},
				{Addr: "127.0.0.1:3", Source: SourceStatic},
			},
		},
		"ip spellings are one address": {
			sources: []Source{Static{"[::1]:7946", "[0:0::1]:7946", "[::1]:7947"}},
			want:    []Candidate{{Addr: "[::1]:7946", Source: SourceStatic}, {Addr: "[::1]:7947", Source: SourceStatic}},
		},
		"errors joined, results kept": {
			sources: []Source{
				&fakeSource{cands: []Candidate{{Addr: "a:1"}}},
				&fakeSource{err: errB},
				nil,
				&fakeSource{cands: []Candidate{{Addr: "a:1"}, {Addr: "d:1"}}, err: errD},
				Static{"c:1"},
			},
			want:     []Candidate{{Addr: "a:1"}, {Addr: "d:1"}, {Addr: "c:1", Source: SourceStatic}},
			wantErrs: []error{errB, errD},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Multi(tc.sources...).Candidates(context.Background())
			if !slices.Equal(got, tc.want) {
				t.Errorf("candidates = %+v, want %+v", got, tc.want)
			}
			if len(tc.wantErrs) == 0 && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			for _, want := range tc.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want it to wrap %v", err, want)
				}
			}
		})
	}
}

func TestMultiStopsOnCancelledContext(t *testing.T) {
	a := &fakeSource{cands: []Candidate{{Addr: "a:1"}}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := Multi(a).Candidates(ctx)
	if !errors.Is(err, context.Canceled) || len(got) != 0 || a.calls != 0 {
		t.Fatalf("got %v, %v after %d calls; want context.Canceled and no calls", got, err, a.calls)
	}
}
