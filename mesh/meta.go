package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// metaVersion is the version of the node metadata encoding. A peer ignores
// metadata of a higher version it does not understand rather than guessing.
//
// Version 2 carries what upper layers announce as opaque tags. Version 1
// carried six upper-layer fields of its own; decodeMeta still reads it (see
// v1Fields), so peers of the previous release on a LAN stay visible with
// their names, relay addresses and presence. A version 1 peer cannot read
// version 2 metadata: it counts it as bad and sees the newer peer without a
// name until it is upgraded.
const metaVersion = 2

// metaLimit is memberlist's cap on node metadata (memberlist.MetaMaxSize);
// more panics inside memberlist.Create.
const metaLimit = 512

// MaxTagKeyLen is the longest tag key. Keys are short because every byte of
// them is gossiped inside the 512-byte metadata cap.
const MaxTagKeyLen = 32

var (
	// ErrMetaTooLarge: the metadata does not fit memberlist's 512-byte cap
	// even after shortening what Meta.Shorten allows.
	ErrMetaTooLarge = errors.New("mesh: node metadata does not fit in 512 bytes")
	// ErrInvalidTag: a tag key or value breaks the rules of Meta.Tags.
	ErrInvalidTag = errors.New("mesh: invalid tag")

	errMetaTooNew = errors.New("mesh: node metadata from a newer version")
)

// Meta is what a peer tells the mesh about itself, carried in memberlist's
// node metadata and so gossiped with membership. The fields are the mesh's
// own; what upper layers announce (relay address, presence, description...)
// travels in Tags, which the mesh carries without reading (serf's model).
type Meta struct {
	Name      string // the name held, "" for none; set by Claim, Rename, Release
	ClaimedAt int64  // unix ms of the claim; orders concurrent claims
	Host      string // host name, for people; shortened last to fit the cap
	Secure    bool   // secure (shared secret) or open mode
	Version   string // the peer's software version
	// Leaving is set just before a graceful leave. memberlist tells its
	// event delegate that a node is gone but not whether it left or failed,
	// so the peer says so itself; others release its name at once.
	Leaving bool
	// Transient marks a short-lived peer (a shell command acting as a name
	// for a moment): it is never chosen to hold messages for others.
	Transient bool

	// Tags are the upper layers' announcements, opaque to the mesh. Keys
	// are 1-32 bytes of ASCII letters, digits, '.', '_' and '-'; values are
	// valid UTF-8. An empty value is the same as no tag and is not sent.
	// The whole metadata must fit memberlist's 512-byte cap, so keys are
	// best kept to a few bytes. The map of a Member or Meta returned by the
	// mesh is shared: read it, do not modify it (SetMeta hands its update
	// function a copy to modify).
	Tags map[string]string

	// Shorten lists the keys of tags that hold free text and may be
	// shortened to fit the cap, in the order they are shortened: the first
	// is cut (at a rune boundary, marked with "…") as far as needed, to
	// nothing if need be, before the next is touched; after them, Host.
	// Tags not listed are never altered: SetMeta fails with
	// ErrMetaTooLarge rather than cut them. Shorten is local to this peer
	// and not gossiped.
	Shorten []string
}

// Tag returns the value of tag key, "" when it is not set.
func (m Meta) Tag(key string) string { return m.Tags[key] }

// SetTag sets tag key to value; an empty value removes the tag.
func (m *Meta) SetTag(key, value string) {
	if value == "" {
		delete(m.Tags, key)
		return
	}
	if m.Tags == nil {
		m.Tags = make(map[string]string)
	}
	m.Tags[key] = value
}

// MayShorten appends to Shorten those of keys it does not list yet.
func (m *Meta) MayShorten(keys ...string) {
	for _, k := range keys {
		if !slices.Contains(m.Shorten, k) {
			m.Shorten = append(m.Shorten, k)
		}
	}
}

// clone returns m with its own copies of Tags and Shorten.
func (m Meta) clone() Meta {
	m.Tags = maps.Clone(m.Tags)
	m.Shorten = slices.Clone(m.Shorten)
	return m
}

// equal reports whether m and o announce the same thing and shorten alike.
func (m Meta) equal(o Meta) bool {
	return m.Name == o.Name && m.ClaimedAt == o.ClaimedAt && m.Host == o.Host && m.Secure == o.Secure &&
		m.Version == o.Version && m.Leaving == o.Leaving && m.Transient == o.Transient &&
		maps.Equal(m.Tags, o.Tags) && slices.Equal(m.Shorten, o.Shorten)
}

// check validates what a local caller set: tag keys and values, and that
// the metadata fits the cap after the shortening it allows. It drops tags
// with empty values.
func (m *Meta) check() error {
	for k, v := range m.Tags {
		if err := checkTag(k, v); err != nil {
			return err
		}
		if v == "" {
			delete(m.Tags, k)
		}
	}
	if !utf8.ValidString(m.Host) || !utf8.ValidString(m.Version) {
		return fmt.Errorf("mesh: host and version must be valid UTF-8")
	}
	if _, ok := fitMeta(*m, metaLimit); !ok {
		return ErrMetaTooLarge
	}
	return nil
}

func checkTag(k, v string) error {
	if k == "" || len(k) > MaxTagKeyLen {
		return fmt.Errorf("%w: key %q must be 1-%d bytes", ErrInvalidTag, clip(k, 40), MaxTagKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: key %q contains %q; use ASCII letters, digits, . _ -", ErrInvalidTag, clip(k, 40), c)
		}
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: the value of %q is not valid UTF-8", ErrInvalidTag, k)
	}
	return nil
}

// wireMeta is the encoding of Meta, version 2. Field names are one or two
// letters because the whole encoding must fit in 512 bytes.
type wireMeta struct {
	Name      string            `json:"n,omitempty"`
	ClaimedAt int64             `json:"c,omitempty"`
	Host      string            `json:"h,omitempty"`
	Secure    bool              `json:"s,omitempty"`
	Version   string            `json:"pv,omitempty"`
	Leaving   bool              `json:"x,omitempty"`
	Transient bool              `json:"t,omitempty"`
	Tags      map[string]string `json:"g,omitempty"`
	V         int               `json:"v"`
}

// v1Fields are the upper-layer fields version 1 carried as fields of its
// own. decodeMeta turns them into tags under the same keys, numbers in
// decimal: the relay and the MCP server use these keys for these tags, so
// they read a version 1 peer as they read a version 2 one. The mesh knows
// only their names and JSON types, not what they mean.
type v1Fields struct {
	D  string `json:"d,omitempty"`  // description (mcpserver)
	R  string `json:"r,omitempty"`  // relay address (relay)
	L  int    `json:"l,omitempty"`  // activity (mcpserver)
	HM int    `json:"hm,omitempty"` // messages held (relay)
	HN int    `json:"hn,omitempty"` // names held for (relay)
	F  string `json:"f,omitempty"`  // focus (mcpserver)
}

func (f v1Fields) tags() map[string]string {
	t := map[string]string{}
	set := func(k, v string) {
		if v != "" && v != "0" {
			t[k] = v
		}
	}
	set("d", f.D)
	set("r", f.R)
	set("l", strconv.Itoa(f.L))
	set("hm", strconv.Itoa(f.HM))
	set("hn", strconv.Itoa(f.HN))
	set("f", f.F)
	if len(t) == 0 {
		return nil
	}
	return t
}

func marshalMeta(m Meta) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// "<" stays one byte rather than six: the cap is tight.
	enc.SetEscapeHTML(false)
	err := enc.Encode(wireMeta{Name: m.Name, ClaimedAt: m.ClaimedAt, Host: m.Host, Secure: m.Secure,
		Version: m.Version, Leaving: m.Leaving, Transient: m.Transient, Tags: m.Tags, V: metaVersion})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// fitMeta encodes m within limit bytes, shortening the tags m.Shorten lists,
// in its order, and then Host, as far as needed. ok is false when that is
// not enough.
func fitMeta(m Meta, limit int) (b []byte, ok bool) {
	m.Tags = maps.Clone(m.Tags) // shortened below: not the caller's map
	order := m.Shorten
	for {
		b, err := marshalMeta(m)
		if err != nil {
			return nil, false
		}
		if len(b) <= limit {
			return b, true
		}
		over := len(b) - limit
		// Every round removes at least one byte, and at least the excess
		// of the raw text, so the loop ends. This is how the previous
		// release cut the description and focus.
		shorten := func(s string) string { return truncateUTF8(s, min(len(s)-1, len(s)-over)) }
		for len(order) > 0 && m.Tags[order[0]] == "" {
			order = order[1:]
		}
		switch {
		case len(order) > 0:
			m.SetTag(order[0], shorten(m.Tags[order[0]]))
		case m.Host != "":
			m.Host = shorten(m.Host)
		default:
			return nil, false
		}
	}
}

// encodeMeta encodes m within limit bytes (see fitMeta). Metadata that
// passed check always fits; for anything else (a peer's metadata decoded and
// re-encoded, whose escapes may have grown) it drops whole tags, longest
// first, then every tag, so that it never exceeds the cap.
func encodeMeta(m Meta, limit int) []byte {
	if b, ok := fitMeta(m, limit); ok {
		return b
	}
	keys := slices.Collect(maps.Keys(m.Tags))
	sort.Slice(keys, func(i, j int) bool {
		if li, lj := len(m.Tags[keys[i]]), len(m.Tags[keys[j]]); li != lj {
			return li > lj
		}
		return keys[i] < keys[j]
	})
	m.Tags = maps.Clone(m.Tags)
	for _, k := range keys {
		delete(m.Tags, k)
		if b, ok := fitMeta(m, limit); ok {
			return b
		}
	}
	b, _ := fitMeta(Meta{Name: m.Name, ClaimedAt: m.ClaimedAt, Secure: m.Secure, Leaving: m.Leaving, Transient: m.Transient}, limit)
	return b
}

// decodeMeta decodes metadata received from another peer: version 2, or
// version 1 (whose upper-layer fields become tags, see v1Fields).
func decodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, nil // a peer that has not set metadata yet
	}
	if len(b) > metaLimit {
		return Meta{}, fmt.Errorf("mesh: node metadata of %d bytes exceeds %d", len(b), metaLimit)
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("mesh: decode node metadata: %w", err)
	}
	switch {
	case w.V > metaVersion:
		return Meta{}, errMetaTooNew
	case w.V < 2:
		// Version 1 had no "g"; its upper-layer fields are the tags.
		var f v1Fields
		if err := json.Unmarshal(b, &f); err != nil {
			return Meta{}, fmt.Errorf("mesh: decode version 1 node metadata: %w", err)
		}
		w.Tags = f.tags()
	}
	if w.Name != "" {
		n, err := NormalizeName(w.Name)
		if err != nil || n != w.Name {
			return Meta{}, fmt.Errorf("mesh: node metadata carries an invalid name")
		}
	}
	for k, v := range w.Tags {
		if err := checkTag(k, v); err != nil {
			return Meta{}, fmt.Errorf("mesh: node metadata: %w", err)
		}
		if v == "" {
			delete(w.Tags, k)
		}
	}
	if len(w.Tags) == 0 {
		w.Tags = nil
	}
	return Meta{Name: w.Name, ClaimedAt: w.ClaimedAt, Host: w.Host, Secure: w.Secure, Version: w.Version,
		Leaving: w.Leaving, Transient: w.Transient, Tags: w.Tags}, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune, marking
// the cut with an ellipsis (which counts towards n).
func truncateUTF8(s string, n int) string {
	const ell = "…"
	if len(s) <= n {
		return s
	}
	cut := n - len(ell)
	if cut <= 0 {
		return ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut == 0 {
		return ""
	}
	return s[:cut] + ell
}
