package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Every refusal the relay answers with carries the code its sender decides by.
func TestRefusalCodes(t *testing.T) {
	tests := map[string]struct {
		err       error
		want      wire.Code
		retryable bool
	}{
		"rate limited":   {errRateLimited, wire.CodeRateLimited, false},
		"not here":       {errNotHere, wire.CodeNotHere, true},
		"unknown sender": {errUnknownSender, wire.CodeUnknownSender, true},
		"not holding":    {errNotHolding, wire.CodeNotHolding, false},
		"inbox closed":   {storeRefusal(fmt.Errorf("add: %w", store.ErrInboxClosed)), wire.CodeInboxClosed, true},
		"quota":          {storeRefusal(fmt.Errorf("put: %w", store.ErrQuota)), wire.CodeQuota, false},
		"disk error":     {storeRefusal(errors.New("no space left on device")), wire.CodeOther, false},
		"over the limit": {decodeRefusal(fmt.Errorf("%w: 2 MiB", wire.ErrOverLimit)), wire.CodeOverLimit, false},
		"malformed":      {decodeRefusal(fmt.Errorf("%w: truncated", wire.ErrBadMessage)), wire.CodeMalformed, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := wire.CodeOf(tc.err); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
			if got := retryable(wire.CodeOf(tc.err)); got != tc.retryable {
				t.Fatalf("retryable %v, want %v", got, tc.retryable)
			}
		})
	}
	if storeRefusal(nil) != nil {
		t.Fatal("storeRefusal(nil) is not nil")
	}
}

// A decision never depends on a refusal's text: a remote error whose text is another
// refusal's, with another code, is decided by its code.
func TestDecisionsIgnoreText(t *testing.T) {
	quotaText := &wire.RemoteError{Code: wire.CodeOther, Msg: "quota reached: " + store.ErrQuota.Error()}
	if wire.CodeOf(quotaText) == wire.CodeQuota {
		t.Fatal("a quota text without the quota code counts as quota")
	}
	notHereText := &wire.RemoteError{Code: wire.CodeMalformed, Msg: errNotHere.Error()}
	if retryable(notHereText.Code) {
		t.Fatal("a malformed refusal with a not-here text is retried")
	}
}

// A recipient whose peer takes smaller bodies than the sender's refuses a larger message
// with CodeOverLimit: the sender reports ErrTooLarge at once, neither retrying until its
// deadline nor storing the message with holders.
func TestRecipientLimitRefusesAtOnce(t *testing.T) {
	ns := meshOf(t, "carol", "dave", "")
	ns[1].relay.cfg.MaxBody = 1024
	ns[0].relay.cfg.DeliverTimeout = time.Minute
	start := time.Now()
	_, err := ns[0].relay.Send(ctx, Outgoing{From: "carol", To: "dave", Body: strings.Repeat("x", 2048)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("over the recipient's limit: %v, want ErrTooLarge naming the limit", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v: the refusal was retried", d)
	}
	for _, n := range ns {
		if held, _ := n.relay.HeldTotals(); held != 0 {
			t.Fatalf("a refused message was stored with a holder")
		}
	}
	if ns[1].relay.Unread("dave") != 0 || ns[1].relay.Stats().Refused == 0 {
		t.Fatalf("unread %d, refused %d: want 0 and a counted refusal", ns[1].relay.Unread("dave"), ns[1].relay.Stats().Refused)
	}
}
