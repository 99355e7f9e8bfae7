package mesh

import "fmt"

// EventType says what changed in the mesh.
type EventType int

const (
	EventPeerJoined     EventType = iota + 1 // a peer became known and alive
	EventPeerUpdated                         // a peer's metadata changed
	EventPeerSuspect                         // this peer's probe of a peer failed
	EventPeerFailed                          // a peer was declared dead
	EventPeerLeft                            // a peer left gracefully
	EventNameClaimed                         // Name now has owner PeerID
	EventNameReleased                        // Name has no owner any more
	EventNameRenamed                         // Name was renamed to To (a forward exists)
	EventNameLost                            // this peer lost Name to PeerID in a concurrent claim
	EventForwardExpired                      // the forward Name -> To expired
)

func (t EventType) String() string {
	switch t {
	case EventPeerJoined:
		return "peer-joined"
	case EventPeerUpdated:
		return "peer-updated"
	case EventPeerSuspect:
		return "peer-suspect"
	case EventPeerFailed:
		return "peer-failed"
	case EventPeerLeft:
		return "peer-left"
	case EventNameClaimed:
		return "name-claimed"
	case EventNameReleased:
		return "name-released"
	case EventNameRenamed:
		return "name-renamed"
	case EventNameLost:
		return "name-lost"
	case EventForwardExpired:
		return "forward-expired"
	}
	return fmt.Sprintf("event(%d)", int(t))
}

// Event is one change seen by this peer.
type Event struct {
	Type   EventType
	PeerID string // the peer concerned (the new owner for name events)
	Name   string // the name concerned, for name events
	To     string // the new name, for EventNameRenamed and EventForwardExpired
}

func (e Event) String() string {
	switch {
	case e.To != "":
		return fmt.Sprintf("%s %s -> %s", e.Type, e.Name, e.To)
	case e.Name != "":
		return fmt.Sprintf("%s %s (peer %s)", e.Type, e.Name, e.PeerID)
	}
	return fmt.Sprintf("%s %s", e.Type, e.PeerID)
}
