package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/node"
)

// tuneFlags are the limits and timings that SPEC sections 2-4 and 7 call
// configurable. Commands that run a peer (serve, mcp, and the brief peer of
// send/check/listen) register them; each has an environment variable, and an
// unset one keeps the packages' default (the SPEC's figure).
type tuneFlags struct {
	on                                                            bool // registered: resolve them
	conversations                                                 bool // --conversation-idle registered (mcp)
	maxBody, fileOver, forwardTTL, storeTTL, replicas, rate, idle string
}

// tuning is what tuneFlags resolve to. A zero field means the default.
type tuning struct {
	MaxBody    int           // largest message body accepted, bytes
	FileOver   int           // received bodies larger than this are saved to a file
	ForwardTTL time.Duration // how long a renamed name forwards
	StoreTTL   time.Duration // how long a stored (future) message waits
	Replicas   int           // peers holding each stored message
	Rate       float64       // messages per second accepted from one sending peer
	// ConversationIdle ends a conversation quiet for this long (mcp).
	ConversationIdle time.Duration
}

func (t *tuneFlags) register(fs *flagSet, conversations bool) {
	t.on, t.conversations = true, conversations
	// The examples in the help are the defaults, from node: one source.
	fs.StringVar(&t.maxBody, "max-body", "", fmt.Sprintf("largest message body sent or accepted, e.g. %[1]s (env PAF_MAX_BODY; default %[1]s)", sizeText(node.DefaultMaxBody)))
	fs.StringVar(&t.fileOver, "file-over", "", fmt.Sprintf("received bodies larger than this are saved to a file, e.g. %[1]s (env PAF_FILE_OVER; default %[1]s)", sizeText(node.DefaultFileOver)))
	fs.StringVar(&t.forwardTTL, "forward-ttl", "", fmt.Sprintf("how long an old name forwards after a rename, e.g. %[1]s (env PAF_FORWARD_TTL; default %[1]s)", durText(node.DefaultForwardTTL)))
	fs.StringVar(&t.storeTTL, "store-ttl", "", fmt.Sprintf("how long a message for an offline name is kept, e.g. %[1]s (env PAF_STORE_TTL; default %[1]s)", durText(node.DefaultStoreTTL)))
	fs.StringVar(&t.replicas, "replicas", "", fmt.Sprintf("how many peers keep each message for an offline name (env PAF_REPLICAS; default %d)", node.DefaultReplicas))
	fs.StringVar(&t.rate, "rate", "", fmt.Sprintf("messages per second accepted from one sending peer, bursts of twice that (env PAF_RATE; default %d)", node.DefaultRate))
	if conversations {
		fs.StringVar(&t.idle, "conversation-idle", "", fmt.Sprintf("end a conversation quiet for this long, e.g. %[1]s (env PAF_CONVERSATION_IDLE; default %[1]s)", durText(node.DefaultConversationIdle)))
	}
}

// resolve reads each setting from its flag, else its variable. A value that
// does not parse, or is out of bounds, is a usage error naming the setting
// and what it accepts.
func (t *tuneFlags) resolve(pick func(flagVal, env string) string) (tuning, error) {
	var out tuning
	if !t.on {
		return out, nil
	}
	var err error
	if v := pick(t.maxBody, "PAF_MAX_BODY"); v != "" {
		if out.MaxBody, err = parseSize(v, node.MinBody, node.MaxBodyLimit); err != nil {
			return out, usagef("--max-body / PAF_MAX_BODY %q: %v", v, err)
		}
	}
	if v := pick(t.fileOver, "PAF_FILE_OVER"); v != "" {
		if out.FileOver, err = parseSize(v, node.MinBody, node.MaxBodyLimit); err != nil {
			return out, usagef("--file-over / PAF_FILE_OVER %q: %v", v, err)
		}
	}
	if v := pick(t.forwardTTL, "PAF_FORWARD_TTL"); v != "" {
		if out.ForwardTTL, err = parseDays(v, node.MinForwardTTL, node.MaxForwardTTL); err != nil {
			return out, usagef("--forward-ttl / PAF_FORWARD_TTL %q: %v", v, err)
		}
	}
	if v := pick(t.storeTTL, "PAF_STORE_TTL"); v != "" {
		if out.StoreTTL, err = parseDays(v, node.MinStoreTTL, node.MaxStoreTTL); err != nil {
			return out, usagef("--store-ttl / PAF_STORE_TTL %q: %v", v, err)
		}
	}
	if v := pick(t.replicas, "PAF_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > node.MaxReplicas {
			return out, usagef("--replicas / PAF_REPLICAS %q: want a whole number from 1 to %d", v, node.MaxReplicas)
		}
		out.Replicas = n
	}
	if v := pick(t.rate, "PAF_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(r) || r < 1 || r > node.MaxRate {
			return out, usagef("--rate / PAF_RATE %q: want messages per second, from 1 to %.0f", v, float64(node.MaxRate))
		}
		out.Rate = r
	}
	if t.conversations {
		if v := pick(t.idle, "PAF_CONVERSATION_IDLE"); v != "" {
			if out.ConversationIdle, err = parseDays(v, node.MinConversationIdle, node.MaxConversationIdle); err != nil {
				return out, usagef("--conversation-idle / PAF_CONVERSATION_IDLE %q: %v", v, err)
			}
		}
	}
	if out.MaxBody > 0 && out.FileOver > out.MaxBody {
		return out, usagef("--file-over (%d bytes) is above --max-body (%d bytes): no body could be that large", out.FileOver, out.MaxBody)
	}
	return out, nil
}

// parseSize reads a byte count: a whole number with an optional unit, B, KiB
// (or K, KB) or MiB (or M, MB), case-insensitive; units are powers of two.
func parseSize(s string, lo, hi int) (int, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	mult := map[string]int{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20}[unit]
	n, err := strconv.Atoi(num)
	if err != nil || mult == 0 || n < 0 || n > hi/mult || n*mult < lo {
		return 0, fmt.Errorf("want a size from %s to %s, e.g. 10KiB or 8MiB", sizeText(lo), sizeText(hi))
	}
	return n * mult, nil
}

// parseDays reads a duration as time.ParseDuration does ("90m", "2h30m"), or
// a whole number of days ("30d").
func parseDays(s string, lo, hi time.Duration) (time.Duration, error) {
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

func sizeText(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// durText is a default duration as a user writes it: 30d, 2h, 60m.
func durText(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0 && d >= 2*time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

func daysText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
