package mcpserver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// The mesh tags the MCP server announces. The keys are those of the fields
// the previous metadata version carried, so a peer of the previous release
// reads the same (mesh decodes its fields into these tags).
const (
	TagDescription = "d" // what the session is for, free text
	TagActivity    = "l" // Activity, decimal; absent when idle
	TagFocus       = "f" // the focus of the current conversation, free text
)

// Activity is what a session advertises about its agent.
type Activity int

const (
	ActivityIdle      Activity = 0 // named but not waiting for anyone
	ActivityListening Activity = 1 // blocked in a listen: happy to take a conversation
	ActivityBusy      Activity = 2 // in a conversation
)

func (a Activity) String() string {
	switch a {
	case ActivityIdle:
		return "idle"
	case ActivityListening:
		return "listening"
	case ActivityBusy:
		return "busy"
	}
	return fmt.Sprintf("activity(%d)", int(a))
}

// shortenText lets the mesh shorten the free-text tags to fit its cap:
// the focus first, then the description, as before tags existed.
func shortenText(m *mesh.Meta) { m.MayShorten(TagFocus, TagDescription) }

// SetMetaDescription announces d as the session's description in m.
func SetMetaDescription(m *mesh.Meta, d string) {
	m.SetTag(TagDescription, strings.ToValidUTF8(d, "\uFFFD"))
	shortenText(m)
}

// MetaDescription is the description a peer announces.
func MetaDescription(m mesh.Meta) string { return m.Tag(TagDescription) }

// SetMetaPresence announces the session's activity and focus in m.
func SetMetaPresence(m *mesh.Meta, a Activity, focus string) {
	v := ""
	if a != ActivityIdle {
		v = strconv.Itoa(int(a))
	}
	m.SetTag(TagActivity, v)
	m.SetTag(TagFocus, strings.ToValidUTF8(focus, "\uFFFD"))
	shortenText(m)
}

// MetaPresence is the activity and focus a peer announces; a missing or
// malformed activity reads as idle.
func MetaPresence(m mesh.Meta) (Activity, string) {
	a, err := strconv.Atoi(m.Tag(TagActivity))
	if err != nil {
		a = int(ActivityIdle)
	}
	return Activity(a), m.Tag(TagFocus)
}
