package discovery

import (
	"context"
	"errors"
	"net/netip"
)

// Source names used in [Candidate.Source].
const (
	SourceLocal  = "local"
	SourceStatic = "static"
)

// Candidate is an address worth trying to join.
type Candidate struct {
	ID     string // peer id when known ("" for static seeds)
	Addr   string // host:port of the peer's memberlist (gossip) endpoint
	Source string // SourceLocal, SourceStatic or SourceMDNS
	// Name is the name the peer's run-dir entry says it holds (SourceLocal only;
	// informational, a hint never trusted for ownership).
	Name string
}

// Source yields candidates. Candidates must return promptly (it is polled every second or so)
// and is not called concurrently with itself. It may return candidates together with an error
// when only part of its work failed.
type Source interface {
	Candidates(ctx context.Context) ([]Candidate, error)
}

// Multi returns a Source that asks each of sources in order, concatenates their candidates and
// drops repeated addresses (the first occurrence wins, so list the most informative source
// first). A failing source does not hide the others: their candidates are still returned, with
// the errors joined. Nil sources are skipped. The sources are called one after another, so the
// result honours the Source contract if each of them does.
func Multi(sources ...Source) Source {
	return multi(sources)
}

type multi []Source

func (m multi) Candidates(ctx context.Context) ([]Candidate, error) {
	var (
		out  []Candidate
		errs []error
		seen = make(map[string]struct{})
	)
	for _, s := range m {
		if s == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		cands, err := s.Candidates(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		for _, c := range cands {
			k := addrKey(c.Addr)
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			out = append(out, c)
		}
	}
	return out, errors.Join(errs...)
}

// addrKey normalises literal IP addresses ("[0:0::1]:7946" and "[::1]:7946" are one address)
// so that de-duplication does not depend on spelling. Host names are compared as written:
// resolving them here would make polling slow and its result depend on DNS.
func addrKey(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.String()
	}
	return addr
}
