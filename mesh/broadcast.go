package mesh

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Application messages gossiped through memberlist start with a version byte
// and a type byte; the rest is the type's payload.
const broadcastVersion = 1

type msgType uint8

const (
	msgForward msgType = 1 // payload: one Forward, JSON
)

// maxBroadcast bounds a decoded broadcast: memberlist's UDP packets are
// smaller anyway, this only stops a hostile TCP user message.
const maxBroadcast = 64 << 10

var errUnknownBroadcast = errors.New("mesh: unknown broadcast")

func encodeBroadcast(t msgType, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{broadcastVersion, byte(t)}, b...), nil
}

// decodeBroadcast decodes one gossiped application message.
func decodeBroadcast(b []byte) (msgType, Forward, error) {
	if len(b) < 2 {
		return 0, Forward{}, fmt.Errorf("mesh: broadcast of %d bytes is too short", len(b))
	}
	if len(b) > maxBroadcast {
		return 0, Forward{}, fmt.Errorf("mesh: broadcast of %d bytes exceeds %d", len(b), maxBroadcast)
	}
	if b[0] != broadcastVersion {
		return 0, Forward{}, fmt.Errorf("%w: version %d", errUnknownBroadcast, b[0])
	}
	switch t := msgType(b[1]); t {
	case msgForward:
		var f Forward
		if err := json.Unmarshal(b[2:], &f); err != nil {
			return 0, Forward{}, fmt.Errorf("mesh: decode forward: %w", err)
		}
		if err := f.validate(); err != nil {
			return 0, Forward{}, err
		}
		return t, f, nil
	default:
		return 0, Forward{}, fmt.Errorf("%w: type %d", errUnknownBroadcast, t)
	}
}

// forwardBroadcast is a queued forward; a newer one for the same old name
// replaces it in the queue.
type forwardBroadcast struct {
	from string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*forwardBroadcast)(nil)

func (b *forwardBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*forwardBroadcast)
	return ok && ob.from == b.from
}
func (b *forwardBroadcast) Name() string    { return "forward:" + b.from }
func (b *forwardBroadcast) Message() []byte { return b.msg }
func (b *forwardBroadcast) Finished()       {}
