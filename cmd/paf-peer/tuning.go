package main

import (
	"fmt"
	"math"
	"strconv"

	"github.com/paf-mesh/paf-mesh/internal/units"
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

func (t *tuneFlags) register(fs *flagSet, conversations bool) {
	t.on, t.conversations = true, conversations
	// The examples in the help are the defaults, from node: one source.
	fs.StringVar(&t.maxBody, "max-body", "", fmt.Sprintf("largest message body sent or accepted, e.g. %[1]s (env PAF_MAX_BODY; default %[1]s)", units.SizeText(node.DefaultMaxBody)))
	fs.StringVar(&t.fileOver, "file-over", "", fmt.Sprintf("received bodies larger than this are saved to a file, e.g. %[1]s (env PAF_FILE_OVER; default %[1]s)", units.SizeText(node.DefaultFileOver)))
	fs.StringVar(&t.forwardTTL, "forward-ttl", "", fmt.Sprintf("how long an old name forwards after a rename, e.g. %[1]s (env PAF_FORWARD_TTL; default %[1]s)", units.DurationText(node.DefaultForwardTTL)))
	fs.StringVar(&t.storeTTL, "store-ttl", "", fmt.Sprintf("how long a message for an offline name is kept, e.g. %[1]s (env PAF_STORE_TTL; default %[1]s)", units.DurationText(node.DefaultStoreTTL)))
	fs.StringVar(&t.replicas, "replicas", "", fmt.Sprintf("how many peers keep each message for an offline name (env PAF_REPLICAS; default %d)", node.DefaultReplicas))
	fs.StringVar(&t.rate, "rate", "", fmt.Sprintf("messages per second accepted from one sending identity (all of a user's peers on a machine share one; an address gets 4 times that), bursts of twice that (env PAF_RATE; default %d)", node.DefaultRate))
	if conversations {
		fs.StringVar(&t.idle, "conversation-idle", "", fmt.Sprintf("end a conversation quiet for this long, e.g. %[1]s (env PAF_CONVERSATION_IDLE; default %[1]s)", units.DurationText(node.DefaultConversationIdle)))
	}
}

// resolve reads each setting from its flag, else its variable, into out; an
// unset one stays zero (node's default). A value that does not parse, or is
// out of bounds, is a usage error naming the setting and what it accepts.
func (t *tuneFlags) resolve(pick func(flagVal, env string) string, out *node.Config) error {
	if !t.on {
		return nil
	}
	var err error
	if v := pick(t.maxBody, "PAF_MAX_BODY"); v != "" {
		if out.MaxBody, err = units.ParseSize(v, node.MinBody, node.MaxBodyLimit); err != nil {
			return usagef("--max-body / PAF_MAX_BODY %q: %v", v, err)
		}
	}
	if v := pick(t.fileOver, "PAF_FILE_OVER"); v != "" {
		if out.FileOver, err = units.ParseSize(v, node.MinBody, node.MaxBodyLimit); err != nil {
			return usagef("--file-over / PAF_FILE_OVER %q: %v", v, err)
		}
	}
	if v := pick(t.forwardTTL, "PAF_FORWARD_TTL"); v != "" {
		if out.ForwardTTL, err = units.ParseDuration(v, node.MinForwardTTL, node.MaxForwardTTL); err != nil {
			return usagef("--forward-ttl / PAF_FORWARD_TTL %q: %v", v, err)
		}
	}
	if v := pick(t.storeTTL, "PAF_STORE_TTL"); v != "" {
		if out.StoreTTL, err = units.ParseDuration(v, node.MinStoreTTL, node.MaxStoreTTL); err != nil {
			return usagef("--store-ttl / PAF_STORE_TTL %q: %v", v, err)
		}
	}
	if v := pick(t.replicas, "PAF_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > node.MaxReplicas {
			return usagef("--replicas / PAF_REPLICAS %q: want a whole number from 1 to %d", v, node.MaxReplicas)
		}
		out.Replicas = n
	}
	if v := pick(t.rate, "PAF_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(r) || r < 1 || r > node.MaxRate {
			return usagef("--rate / PAF_RATE %q: want messages per second, from 1 to %.0f", v, float64(node.MaxRate))
		}
		out.Rate = r
	}
	if t.conversations {
		if v := pick(t.idle, "PAF_CONVERSATION_IDLE"); v != "" {
			if out.ConversationIdle, err = units.ParseDuration(v, node.MinConversationIdle, node.MaxConversationIdle); err != nil {
				return usagef("--conversation-idle / PAF_CONVERSATION_IDLE %q: %v", v, err)
			}
		}
	}
	if out.MaxBody > 0 && out.FileOver > out.MaxBody {
		return usagef("--file-over (%d bytes) is above --max-body (%d bytes): no body could be that large", out.FileOver, out.MaxBody)
	}
	return nil
}
