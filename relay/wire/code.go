package wire

import (
	"errors"
	"fmt"
)

// Code classifies the error a peer answers a request with. It crosses the wire as one byte
// beside the human text (see the response layout in handshake.go), so that the requester
// decides what to do (retry, give up, store elsewhere) by the code and never by the text,
// which is for people and may change.
//
// The numbering is part of the protocol: a value is never reused or renumbered, and a new
// one needs a new handshake version (a response decoder refuses a code it does not know).
type Code uint8

// Error codes. CodeOther is any failure that no caller acts on in a specific way.
const (
	// CodeOther: an unclassified failure (a disk error, an internal error); the text says
	// what it was.
	CodeOther Code = 0
	// CodeNoHandler: the peer serves no requests (its Transport has no Handler).
	CodeNoHandler Code = 1
	// CodeResponseTooLarge: the handler's response did not fit in a frame.
	CodeResponseTooLarge Code = 2
	// CodeMalformed: the request body could not be decoded or failed validation.
	CodeMalformed Code = 3
	// CodeOverLimit: a well-formed message with a body larger than the receiving peer
	// accepts. No retry can deliver it.
	CodeOverLimit Code = 4
	// CodeRateLimited: the receiving peer refuses more requests from this peer for now.
	CodeRateLimited Code = 5
	// CodeNotHere: the receiving peer does not hold the recipient's name (a route that
	// gossip has not settled yet); retryable.
	CodeNotHere Code = 6
	// CodeUnknownSender: the sender's name is not bound to the sending peer in the
	// receiver's view (gossip behind); retryable for a moment.
	CodeUnknownSender Code = 7
	// CodeInboxClosed: the recipient's inbox closed while the message was queued (the name
	// moved); retryable.
	CodeInboxClosed Code = 8
	// CodeQuota: the holder already keeps as many messages for the recipient as it will.
	CodeQuota Code = 9
	// CodeNotHolding: the peer does not hold messages for others (a transient peer).
	CodeNotHolding Code = 10
	// CodeClockSkew: the request's stamp (Message.Stamp) is outside the receiver's clock
	// window (DefaultWindow): the two peers' clocks disagree. The receiver kept nothing; a
	// retry succeeds once a clock is fixed.
	CodeClockSkew Code = 11

	numCodes = 12
)

var codeNames = [numCodes]string{
	CodeOther:            "other",
	CodeNoHandler:        "no-handler",
	CodeResponseTooLarge: "response-too-large",
	CodeMalformed:        "malformed",
	CodeOverLimit:        "over-limit",
	CodeRateLimited:      "rate-limited",
	CodeNotHere:          "not-here",
	CodeUnknownSender:    "unknown-sender",
	CodeInboxClosed:      "inbox-closed",
	CodeQuota:            "quota",
	CodeNotHolding:       "not-holding",
	CodeClockSkew:        "clock-skew",
}

// String is the code's name, for logs.
func (c Code) String() string {
	if c.Known() {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Known reports whether c is a code this version of the protocol defines.
func (c Code) Known() bool { return int(c) < numCodes }

// coder is implemented by errors that carry a Code: *RemoteError and what WithCode returns.
type coder interface{ ErrorCode() Code }

// codedError is an error given a Code by WithCode.
type codedError struct {
	code Code
	err  error
}

func (e *codedError) Error() string   { return e.err.Error() }
func (e *codedError) Unwrap() error   { return e.err }
func (e *codedError) ErrorCode() Code { return e.code }

// WithCode returns err carrying code: a Handler that answers with it sends code on the wire
// (the requester gets a *RemoteError with that Code), and CodeOf reports it. The text stays
// err's, and errors.Is/As still see err. WithCode(code, nil) is nil.
func WithCode(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// CodeOf returns the Code that err (or an error it wraps) carries: a *RemoteError's, or one
// given by WithCode. An error that carries none is CodeOther, and so is nil.
func CodeOf(err error) Code {
	var c coder
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return CodeOther
}

// RemoteError is the error a peer's Handler answered a request with.
type RemoteError struct {
	// Code classifies the failure; decide by it.
	Code Code
	// Msg is the text of the remote error, for people: never decide by it.
	Msg string
}

// Error returns the remote text as it is.
func (e *RemoteError) Error() string { return e.Msg }

// ErrorCode returns e.Code, so that CodeOf finds it.
func (e *RemoteError) ErrorCode() Code { return e.Code }
