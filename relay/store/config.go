package store

import "time"

// Defaults of Config. They are SPEC section 3's, and relay.DefaultConfig uses the same.
const (
	// DefaultLargeBody is the body size above which an arriving message's body is saved to
	// its own file and the inbox keeps a preview that names it (SPEC: 10 KiB): an agent's
	// context should not fill with a long paste it may not need.
	DefaultLargeBody = 10 << 10
	// DefaultPreviewLen is how much of a large body the preview shows inline: enough to tell
	// what the file is about.
	DefaultPreviewLen = 1000
)

// Config configures the inboxes of one state root. The zero value of each optional field
// means its default.
type Config struct {
	// Root is the shared state directory: inboxes live in Root/inbox (<name>.log and
	// <name>.db), saved large bodies in Root/files/<name>. Required.
	Root string
	// LargeBody: received bodies over this many bytes are saved to a file; default
	// DefaultLargeBody.
	LargeBody int
	// PreviewLen is how many bytes of a saved body the stored message keeps; default
	// DefaultPreviewLen.
	PreviewLen int
	// Now is the clock (de-duplication ids' retention, arrival times); default time.Now.
	Now func() time.Time
}

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.LargeBody <= 0 {
		cfg.LargeBody = DefaultLargeBody
	}
	if cfg.PreviewLen <= 0 {
		cfg.PreviewLen = DefaultPreviewLen
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}
