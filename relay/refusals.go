package relay

import (
	"errors"

	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Refusals a sender acts on. They cross the wire as a *wire.RemoteError with their code
// (the text is for people), and a local delivery returns them as one too (deliverAs).
var (
	errRateLimited   = wire.WithCode(wire.CodeRateLimited, errors.New("rate limited: this peer takes no more messages from the sender (its identity, or its address) for now; wait a few seconds and retry"))
	errNotHere       = wire.WithCode(wire.CodeNotHere, errors.New("not here: this peer does not hold the recipient's name"))
	errUnknownSender = wire.WithCode(wire.CodeUnknownSender, errors.New("unknown sender: the sender's name is not bound to the sending peer"))
	errNotHolding    = wire.WithCode(wire.CodeNotHolding, errors.New("this peer does not hold messages for others"))
)

// retryable: refusals that a moment of gossip can cure (a route, a name binding or an inbox
// that is moving).
func retryable(code wire.Code) bool {
	return code == wire.CodeNotHere || code == wire.CodeUnknownSender || code == wire.CodeInboxClosed
}

// storeRefusal gives an inbox's or held store's error the code its sender decides by.
func storeRefusal(err error) error {
	switch {
	case err == nil:
		return nil
	case isInboxClosed(err):
		return wire.WithCode(wire.CodeInboxClosed, err)
	case errors.Is(err, store.ErrQuota):
		return wire.WithCode(wire.CodeQuota, err)
	}
	return err
}

// decodeRefusal gives a message decoder's error its code.
func decodeRefusal(err error) error {
	if errors.Is(err, wire.ErrOverLimit) {
		return wire.WithCode(wire.CodeOverLimit, err)
	}
	return wire.WithCode(wire.CodeMalformed, err)
}

// isInboxClosed reports whether err is an inbox's refusal because it closed (the name moved):
// a sender retries.
func isInboxClosed(err error) bool { return errors.Is(err, store.ErrInboxClosed) }
