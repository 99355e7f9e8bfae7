package mcpserver

import (
	"log/slog"
	"time"
)

// Config configures a Server. Zero fields take the values of DefaultConfig.
type Config struct {
	// Backend is the peer the tools act through. Required.
	Backend Backend
	// Logger receives the server's logs; it must not write to the MCP
	// output. Nil discards.
	Logger *slog.Logger
	// Version is reported as the server version in initialize.
	Version string

	// IdleTimeout ends a conversation in which nothing was sent or received
	// for this long, telling both sides (SPEC: 60 minutes): a forgotten
	// conversation would otherwise keep a session "busy" for ever.
	IdleTimeout time.Duration
	// DefaultWait is how long paf_listen and paf_wait_response block when
	// the call gives no timeout_seconds: 50 s stays under the 60 s request
	// timeout of common clients, so a wait ends in a result, not an error.
	DefaultWait time.Duration
	// MaxWait is the longest timeout_seconds accepted (SPEC: 3600 s).
	MaxWait time.Duration
	// ProgressInterval is how often a blocked call sends
	// notifications/progress when the request carries a progress token:
	// often enough to keep clients that reset their timeout on progress
	// from giving up, rarely enough to cost nothing.
	ProgressInterval time.Duration
	// JoinWait bounds how long a tool waits for the peer to finish joining
	// the mesh before it answers "still joining, call again". Joining
	// includes taking the name given at start, which waits up to 30 s for a
	// crashed session's old peer to be released (about 6 s on one machine,
	// 11 s on a LAN): the default covers that, well inside a client's 60 s.
	JoinWait time.Duration
	// OpeningGrace: when paf_listen wakes to nothing but the opening of a
	// new conversation, it waits this long for the caller's first question,
	// which usually follows at once (paf_connect, then paf_send), so the
	// listener gets both in one result.
	OpeningGrace time.Duration
	// SendTimeout bounds the messages the server sends on its own: the end
	// of an idle conversation, and the ends sent when the session closes.
	SendTimeout time.Duration
	// PresenceInterval is the least time between two announcements of
	// this session's activity (presenceLoop): a change right after the last
	// one is announced when the interval is over, as the state is then. An
	// agent serving questions leaves paf_listen and enters it again within
	// a millisecond or two; announcing each flip cost a gossip update
	// (memberlist UpdateNode, and every other peer's processing of it), 15-20 %
	// of both processes' CPU in the question-and-answer benchmark, for a
	// state nobody could see. A quarter of a second is below what a person or
	// an agent listing sessions notices.
	PresenceInterval time.Duration
	// Workers is how many requests that may block (tool calls, resource
	// reads) ServeStdio runs at once on goroutines of their own, plus 100
	// (mcp-go queued 100 behind its workers); past that the reading
	// goroutine serves a request itself before it reads the next. Blocking
	// tools hold one each while they wait, so this is more than mcp-go's
	// default of 5.
	Workers int
	// MaxLine bounds one line of input of ServeStdio (one JSON-RPC
	// message): default MaxLine, room for the largest paf_send. A longer
	// line is read to its end, dropped and answered with an error.
	MaxLine int
	// MaxConversations bounds the conversations remembered, so that a peer
	// opening thousands of them cannot grow this process without limit.
	// Ended ones are forgotten first.
	MaxConversations int

	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults of SPEC sections 4 and 5.
func DefaultConfig() Config {
	return Config{
		IdleTimeout:      60 * time.Minute,
		DefaultWait:      50 * time.Second,
		MaxWait:          3600 * time.Second,
		ProgressInterval: 10 * time.Second,
		JoinWait:         35 * time.Second,
		OpeningGrace:     2 * time.Second,
		SendTimeout:      5 * time.Second,
		Workers:          32,
		PresenceInterval: 250 * time.Millisecond,
		MaxConversations: 256,
		MaxLine:          MaxLine,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.DefaultWait <= 0 {
		c.DefaultWait = d.DefaultWait
	}
	if c.MaxWait <= 0 {
		c.MaxWait = d.MaxWait
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = d.ProgressInterval
	}
	if c.JoinWait <= 0 {
		c.JoinWait = d.JoinWait
	}
	if c.OpeningGrace < 0 {
		c.OpeningGrace = 0
	} else if c.OpeningGrace == 0 {
		c.OpeningGrace = d.OpeningGrace
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = d.SendTimeout
	}
	if c.PresenceInterval <= 0 {
		c.PresenceInterval = d.PresenceInterval
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.MaxLine <= 0 {
		c.MaxLine = d.MaxLine
	}
	if c.MaxConversations <= 0 {
		c.MaxConversations = d.MaxConversations
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c
}
