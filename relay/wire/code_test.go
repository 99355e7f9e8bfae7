package wire

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodeNames(t *testing.T) {
	seen := map[string]Code{}
	for c := Code(0); c < numCodes; c++ {
		name := c.String()
		if !c.Known() || name == "" || name == fmt.Sprintf("code(%d)", uint8(c)) {
			t.Fatalf("code %d has no name", c)
		}
		if other, dup := seen[name]; dup {
			t.Fatalf("codes %d and %d are both %q", other, c, name)
		}
		seen[name] = c
	}
	if c := Code(numCodes); c.Known() || c.String() != fmt.Sprintf("code(%d)", numCodes) {
		t.Fatalf("code %d: known %v, name %q", c, c.Known(), c.String())
	}
}

func TestCodeOf(t *testing.T) {
	base := errors.New("quota reached")
	tests := map[string]struct {
		err  error
		want Code
	}{
		"nil":                  {nil, CodeOther},
		"plain error":          {base, CodeOther},
		"coded":                {WithCode(CodeQuota, base), CodeQuota},
		"wrapped coded":        {fmt.Errorf("hold: %w", WithCode(CodeQuota, base)), CodeQuota},
		"remote error":         {&RemoteError{Code: CodeNotHere, Msg: "not here"}, CodeNotHere},
		"wrapped remote error": {fmt.Errorf("deliver: %w", &RemoteError{Code: CodeInboxClosed}), CodeInboxClosed},
		"outermost code wins":  {WithCode(CodeMalformed, fmt.Errorf("x: %w", WithCode(CodeQuota, base))), CodeMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := CodeOf(tc.err); got != tc.want {
				t.Fatalf("CodeOf(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestWithCodeKeepsTheError(t *testing.T) {
	base := errors.New("quota reached")
	err := WithCode(CodeQuota, fmt.Errorf("held: %w", base))
	if err.Error() != "held: quota reached" || !errors.Is(err, base) {
		t.Fatalf("WithCode changed the error: %q, Is(base) %v", err, errors.Is(err, base))
	}
	if WithCode(CodeQuota, nil) != nil {
		t.Fatal("WithCode(code, nil) is not nil")
	}
}
