package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Errors a caller of the package acts on.
var (
	// ErrNoBackend: Config.Backend was not set.
	ErrNoBackend = errors.New("mcpserver: Config.Backend is required")
	// errJoining: the peer has not finished joining the mesh within
	// Config.JoinWait; the tool should be called again.
	errJoining = errors.New("this peer is still joining the mesh")
)

// userError is a mistake the model can fix; its text says what to do.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func userErrorf(format string, args ...any) error {
	return &userError{fmt.Sprintf(format, args...)}
}

// explain turns an error from a tool into a message for the model: what
// went wrong and what to do about it.
func explain(tool string, err error) string {
	var ue *userError
	switch {
	case errors.As(err, &ue):
		return ue.msg
	case errors.Is(err, errJoining):
		return "This peer is still joining the mesh. Call " + tool + " again in a few seconds."
	case errors.Is(err, mesh.ErrInvalidName):
		return trimPkg(err) + ". A name is 1-64 characters of a-z 0-9 . _ - and starts with a letter or digit: call " + tool + " again with such a name."
	case errors.Is(err, mesh.ErrNameTaken):
		return trimPkg(err) + ". Pick a different name and call " + tool + " again."
	case errors.Is(err, mesh.ErrNoName):
		return "This session has no name yet. Register one with paf_register (or pass my_name / session_name), then call " + tool + " again."
	case errors.Is(err, relay.ErrToSelf):
		return "That is this session's own name: messages go to other sessions. Call paf_list_sessions to see who is online."
	case errors.Is(err, relay.ErrTooLarge):
		return trimPkg(err) + "."
	case errors.Is(err, relay.ErrRateLimited):
		return trimPkg(err) + "."
	case errors.Is(err, relay.ErrBadText):
		return trimPkg(err) + "."
	case errors.Is(err, relay.ErrEmpty):
		return "The message is empty, so nothing was sent. Call " + tool + " again with the text to send."
	case errors.Is(err, relay.ErrQuota):
		return trimPkg(err) + ". Nothing was sent." // the text names the quota and what to do
	case errors.Is(err, relay.ErrNoHolders):
		return trimPkg(err) + ": the recipient is offline and no other peer could keep the message. Try again when the recipient is online."
	case errors.Is(err, context.DeadlineExceeded):
		return tool + " timed out (" + trimPkg(err) + "). Call it again; if it keeps timing out, run `paf-peer status` in a shell to look at the mesh."
	}
	return tool + " failed: " + trimPkg(err) + ". Call it again; if it keeps failing, run `paf-peer status` in a shell to look at the mesh."
}

// trimPkg drops the "relay: " and "mesh: " prefixes of internal errors,
// which mean nothing to the model.
func trimPkg(err error) string {
	s := err.Error()
	for _, p := range []string{"relay: ", "mesh: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return strings.TrimRight(s, ". ")
}

// errorResult is the IsError result of a failed tool call.
func errorResult(tool string, err error) toolResult {
	text := explain(tool, err)
	return toolResult{text: text, data: map[string]any{"error": text}, isError: true}
}
