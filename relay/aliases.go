package relay

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// The message types live in package wire (they are what crosses the wire, and the store
// keeps them too); these aliases keep relay's API what its callers know.
type (
	// Message is one message between agents; see wire.Message.
	Message = wire.Message
	// Kind says what a message is for; see wire.Kind.
	Kind = wire.Kind
	// JSONMessage is a message in the stable JSON shape of SPEC section 6; see
	// wire.JSONMessage.
	JSONMessage = wire.JSONMessage
	// TransportStats are the transport's counters; see wire.TransportStats.
	TransportStats = wire.TransportStats
)

// Message kinds.
const (
	KindMessage = wire.KindMessage
	KindReply   = wire.KindReply
	KindRefocus = wire.KindRefocus
	KindEnd     = wire.KindEnd
	KindSystem  = wire.KindSystem
)

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) { return wire.ParseKind(s) }

// ValidID reports whether id is a message id this peer accepts; see wire.ValidID.
func ValidID(id string) error { return wire.ValidID(id) }

// ValidConversationID reports whether id may name a conversation; see
// wire.ValidConversationID.
func ValidConversationID(id string) error { return wire.ValidConversationID(id) }

// ErrClosed: the relay (or its transport) is closed.
var ErrClosed = wire.ErrClosed
