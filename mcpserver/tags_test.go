package mcpserver

import (
	"strings"
	"testing"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// Presence and description read back as set; idle with no focus is no tag
// at all; free text is made valid UTF-8 and may be shortened by the mesh,
// focus before description.
func TestMetaTags(t *testing.T) {
	var m mesh.Meta
	SetMetaDescription(&m, "billing expert")
	SetMetaPresence(&m, ActivityBusy, "why do retries double-charge?")
	if a, f := MetaPresence(m); a != ActivityBusy || f != "why do retries double-charge?" {
		t.Errorf("MetaPresence = %v, %q", a, f)
	}
	if d := MetaDescription(m); d != "billing expert" {
		t.Errorf("MetaDescription = %q", d)
	}
	if strings.Join(m.Shorten, ",") != TagFocus+","+TagDescription {
		t.Errorf("Shorten = %v, want focus then description", m.Shorten)
	}
	SetMetaPresence(&m, ActivityIdle, "")
	if _, ok := m.Tags[TagActivity]; ok || m.Tag(TagFocus) != "" {
		t.Errorf("idle left tags: %v", m.Tags)
	}
	if a, _ := MetaPresence(m); a != ActivityIdle {
		t.Errorf("idle reads as %v", a)
	}
	SetMetaDescription(&m, "bad \xff byte")
	if d := MetaDescription(m); d != "bad \uFFFD byte" {
		t.Errorf("invalid UTF-8 kept: %q", d)
	}
	m.SetTag(TagActivity, "busy")
	if a, _ := MetaPresence(m); a != ActivityIdle {
		t.Errorf("malformed activity reads as %v, want idle", a)
	}
	if got := Activity(7).String(); got != "activity(7)" {
		t.Errorf("unknown activity prints %q", got)
	}
}
