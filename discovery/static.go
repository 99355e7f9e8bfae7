package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrBadSeed is wrapped by the errors of [ParseSeeds], so callers can treat them as bad usage.
var ErrBadSeed = errors.New("discovery: bad seed")

// seedExample is shown in errors so the user sees what a good entry looks like.
const seedExample = "192.168.1.20:7946"

// ParseSeeds parses "host:port,host:port" (spaces allowed around commas, empty -> nil).
// Each must be host:port with a non-empty host and a port 1-65535; IPv6 literals go in
// brackets ("[::1]:7946"). Empty elements (a trailing comma) are ignored and repeated seeds are
// returned once. Errors are one line naming the bad entry and what a good one looks like:
// `discovery: bad seed "foo": missing port; want host:port, e.g. 192.168.1.20:7946`.
func ParseSeeds(s string) ([]string, error) {
	var out []string
	seen := make(map[string]struct{})
	for part := range strings.SplitSeq(s, ",") {
		seed := strings.TrimSpace(part)
		if seed == "" {
			continue
		}
		if err := checkHostPort(seed); err != nil {
			return nil, fmt.Errorf("%w %q: %v; want host:port, e.g. %s", ErrBadSeed, seed, err, seedExample)
		}
		if _, dup := seen[seed]; dup {
			continue
		}
		seen[seed] = struct{}{}
		out = append(out, seed)
	}
	return out, nil
}

// Static is a fixed list of seed addresses, usually from [ParseSeeds]. It implements [Source].
type Static []string

// Candidates returns one candidate per seed, with an empty ID since a seed's peer is unknown.
func (s Static) Candidates(ctx context.Context) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(s))
	for _, addr := range s {
		out = append(out, Candidate{Addr: addr, Source: SourceStatic})
	}
	return out, nil
}

// maxHostLen is the DNS limit on a full host name.
const maxHostLen = 253

// checkHostPort reports, in a few words, what is wrong with addr as host:port; nil if nothing.
// It is shared by seed parsing and rendezvous entry decoding so both accept the same addresses.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(strings.TrimSuffix(ae.Err, " in address"))
		}
		return err
	}
	switch {
	case host == "":
		return errors.New("empty host")
	case strings.HasPrefix(addr, "["):
		// Brackets are for IPv6 literals only (SplitHostPort accepts any text in them). netip
		// takes any text as a zone, so also refuse what no interface name contains.
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q in brackets is not an IP address", host)
		}
		if i := strings.IndexFunc(host, func(r rune) bool {
			return r == ',' || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r)
		}); i >= 0 {
			return fmt.Errorf("host has invalid character %q", []rune(host[i:])[0])
		}
	default:
		if err := checkHostName(host); err != nil {
			return err
		}
	}
	if port == "" {
		return errors.New("empty port")
	}
	n, err := strconv.ParseUint(port, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return fmt.Errorf("port %s out of range 1-65535", port)
		}
		return fmt.Errorf("port %q is not a number", port)
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("port %d out of range 1-65535", n)
	}
	return nil
}

// checkHostName accepts an IPv4 literal or a DNS-style name (letters, digits, '-', '.', '_').
// Anything else is almost certainly a typo, and catching it here gives a clearer message than
// the dial error memberlist would log much later.
func checkHostName(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) > maxHostLen {
		return fmt.Errorf("host longer than %d bytes", maxHostLen)
	}
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		default:
			return fmt.Errorf("host has invalid character %q", r)
		}
	}
	return nil
}
